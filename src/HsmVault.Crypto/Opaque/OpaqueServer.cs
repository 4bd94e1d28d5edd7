using System.Security.Cryptography;
using HsmVault.Crypto.Internal;

namespace HsmVault.Crypto.Opaque;

/// <summary>
/// The server side of OPAQUE-3DH (RFC 9807), ristretto255-SHA512. Stateless between calls: the only
/// per-login state is the <see cref="ServerLoginState"/> returned by <see cref="GenerateKe2(ReadOnlySpan{byte}, ReadOnlySpan{byte}, byte[])"/>.
/// Client and server identities are absent, so both default to the public keys (RFC 9807 section 4.1.1).
/// </summary>
/// <remarks>
/// Safe to share between threads as long as the <see cref="IOprfSeedExpander"/> is: the instance holds no
/// mutable state, and the key pair is only read.
/// </remarks>
public sealed class OpaqueServer
{
    private readonly OpaqueConfiguration _configuration;
    private readonly IOprfSeedExpander _oprfSeed;
    private readonly ServerKeyPair _keyPair;
    private readonly IOpaqueRandom _random;

    /// <summary>Creates a server.</summary>
    /// <param name="configuration">The shared OPAQUE configuration (the server only uses its context).</param>
    /// <param name="oprfSeed">Computes Expand(oprf_seed, ...) where the seed lives, normally the token.</param>
    /// <param name="keyPair">The server's long-term AKE key pair; owned by the caller.</param>
    public OpaqueServer(OpaqueConfiguration configuration, IOprfSeedExpander oprfSeed, ServerKeyPair keyPair)
        : this(configuration, oprfSeed, keyPair, SystemOpaqueRandom.Instance)
    {
    }

    /// <summary>Creates a server with a chosen randomness source, so tests can replay the RFC 9807 vectors.</summary>
    internal OpaqueServer(OpaqueConfiguration configuration, IOprfSeedExpander oprfSeed, ServerKeyPair keyPair, IOpaqueRandom random)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        ArgumentNullException.ThrowIfNull(oprfSeed);
        ArgumentNullException.ThrowIfNull(keyPair);
        ArgumentNullException.ThrowIfNull(random);
        _configuration = configuration;
        _oprfSeed = oprfSeed;
        _keyPair = keyPair;
        _random = random;
    }

    /// <summary>RFC 9807 section 5.2.2 CreateRegistrationResponse.</summary>
    /// <param name="registrationRequest">The client's RegistrationRequest (<see cref="OpaqueSizes.RegistrationRequest"/> bytes).</param>
    /// <param name="credentialIdentifier">The server's stable identifier for this user's credential; selects the per-user OPRF key.</param>
    /// <returns>The RegistrationResponse (<see cref="OpaqueSizes.RegistrationResponse"/> bytes).</returns>
    /// <exception cref="OpaqueProtocolException">Wrong length, or the blinded element is invalid or the identity.</exception>
    public byte[] CreateRegistrationResponse(ReadOnlySpan<byte> registrationRequest, ReadOnlySpan<byte> credentialIdentifier)
    {
        OpaqueCore.CheckLength(registrationRequest, OpaqueSizes.RegistrationRequest, "RegistrationRequest");
        Ristretto255.ValidateElement(registrationRequest, "blinded element");

        var response = new byte[OpaqueSizes.RegistrationResponse];
        OpaqueCore.EvaluateOprf(_oprfSeed, credentialIdentifier, registrationRequest, response.AsSpan(0, Ristretto255.ElementSize));
        _keyPair.PublicKey.CopyTo(response.AsSpan(Ristretto255.ElementSize));
        return response;
    }

    /// <summary>
    /// Checks that a RegistrationRecord from a client is well formed before it is stored: the right length and a
    /// client public key that is a valid, non-identity element (RFC 9807 section 10.7).
    /// </summary>
    /// <exception cref="OpaqueProtocolException">The record is malformed.</exception>
    public static void ValidateRegistrationRecord(ReadOnlySpan<byte> registrationRecord)
    {
        OpaqueCore.CheckLength(registrationRecord, OpaqueSizes.RegistrationRecord, "RegistrationRecord");
        Ristretto255.ValidateElement(registrationRecord[..OpaqueSizes.PublicKey], "client public key");
    }

    /// <summary>
    /// Checks that a KE1 is well formed before any state is read or any guess is charged: the right length, and
    /// a blinded element and client keyshare that are valid, non-identity elements (RFC 9807 sections 10.7, 6.4.3).
    /// </summary>
    /// <exception cref="OpaqueProtocolException">KE1 is malformed.</exception>
    public static void ValidateKe1(ReadOnlySpan<byte> ke1)
    {
        OpaqueCore.CheckLength(ke1, OpaqueSizes.Ke1, "KE1");
        Ristretto255.ValidateElement(ke1[..Ristretto255.ElementSize], "blinded element");
        Ristretto255.ValidateElement(ke1[^Ristretto255.ElementSize..], "client keyshare");
    }

    /// <summary>RFC 9807 section 6.3.1 / 6.4.3 GenerateKE2.</summary>
    /// <param name="ke1">The client's KE1 (<see cref="OpaqueSizes.Ke1"/> bytes).</param>
    /// <param name="credentialIdentifier">The credential identifier used at registration.</param>
    /// <param name="registrationRecord">
    /// The stored RegistrationRecord, or null for an unknown user: the reply is then built from a fake record
    /// (RFC 9807 section 10.9) so that it cannot be told apart from a real one.
    /// </param>
    /// <returns>KE2 and the state for <see cref="ServerFinish"/>.</returns>
    /// <exception cref="OpaqueProtocolException">KE1 or the record is malformed.</exception>
    public ServerLoginStart GenerateKe2(ReadOnlySpan<byte> ke1, ReadOnlySpan<byte> credentialIdentifier, byte[]? registrationRecord) =>
        GenerateKe2(ke1, credentialIdentifier, registrationRecord, default, default);

    /// <summary>GenerateKE2 with explicit identities (empty = absent), for the RFC 9807 vectors that set them.</summary>
    internal ServerLoginStart GenerateKe2(
        ReadOnlySpan<byte> ke1,
        ReadOnlySpan<byte> credentialIdentifier,
        byte[]? registrationRecord,
        ReadOnlySpan<byte> serverIdentity,
        ReadOnlySpan<byte> clientIdentity)
    {
        OpaqueCore.CheckLength(ke1, OpaqueSizes.Ke1, "KE1");
        var blindedElement = ke1[..Ristretto255.ElementSize];
        var clientPublicKeyshare = ke1.Slice(Ristretto255.ElementSize + OpaqueSizes.Nonce, OpaqueSizes.PublicKey);
        Ristretto255.ValidateElement(blindedElement, "blinded element");
        Ristretto255.ValidateElement(clientPublicKeyshare, "client public keyshare");

        var record = registrationRecord is null ? FakeRecord() : (byte[])registrationRecord.Clone();
        var ke2 = new byte[OpaqueSizes.Ke2];
        var serverPrivateKeyshare = new byte[OpaqueSizes.PrivateKey];
        var ikm = new byte[3 * Ristretto255.ElementSize];
        try
        {
            if (registrationRecord is not null)
            {
                ValidateRegistrationRecord(record);
            }

            var clientPublicKey = record.AsSpan(0, OpaqueSizes.PublicKey);
            var maskingKey = record.AsSpan(OpaqueSizes.PublicKey, OpaqueSizes.Hash);
            var envelope = record.AsSpan(OpaqueSizes.PublicKey + OpaqueSizes.Hash, OpaqueSizes.Envelope);
            var serverPublicKey = _keyPair.PublicKey;

            // RFC 9807 section 5.3 CreateCredentialResponse: evaluated_message || masking_nonce || masked_response.
            var credentialResponse = ke2.AsSpan(0, OpaqueSizes.CredentialResponse);
            OpaqueCore.EvaluateOprf(_oprfSeed, credentialIdentifier, blindedElement, credentialResponse[..Ristretto255.ElementSize]);
            var maskingNonce = credentialResponse.Slice(Ristretto255.ElementSize, OpaqueSizes.Nonce);
            _random.GetBytes(maskingNonce);
            var maskedResponse = credentialResponse.Slice(Ristretto255.ElementSize + OpaqueSizes.Nonce, OpaqueSizes.MaskedResponse);
            serverPublicKey.CopyTo(maskedResponse);
            envelope.CopyTo(maskedResponse[OpaqueSizes.PublicKey..]);
            OpaqueCore.ApplyCredentialResponsePad(maskingKey, maskingNonce, maskedResponse);

            // RFC 9807 section 6.4.3 AuthServerRespond: server_nonce || server_public_keyshare || server_mac.
            var serverNonce = ke2.AsSpan(OpaqueSizes.CredentialResponse, OpaqueSizes.Nonce);
            _random.GetBytes(serverNonce);
            var serverPublicKeyshare = ke2.AsSpan(OpaqueSizes.CredentialResponse + OpaqueSizes.Nonce, OpaqueSizes.PublicKey);
            Span<byte> keyshareSeed = stackalloc byte[OpaqueSizes.Seed];
            _random.GetBytes(keyshareSeed);
            OpaqueCore.DeriveDiffieHellmanKeyPair(keyshareSeed, serverPrivateKeyshare, serverPublicKeyshare);
            CryptographicOperations.ZeroMemory(keyshareSeed);

            // dh1 = server_private_keyshare * client_public_keyshare, dh2 = server_private_key * client_public_keyshare,
            // dh3 = server_private_keyshare * client_public_key.
            Ristretto255.ScalarMult(serverPrivateKeyshare, clientPublicKeyshare, ikm.AsSpan(0, 32));
            Ristretto255.ScalarMult(_keyPair.PrivateKey, clientPublicKeyshare, ikm.AsSpan(32, 32));
            Ristretto255.ScalarMult(serverPrivateKeyshare, clientPublicKey, ikm.AsSpan(64, 32));

            var preamble = OpaqueCore.Preamble(
                _configuration.Context.Span,
                clientIdentity.IsEmpty ? clientPublicKey : clientIdentity,
                ke1,
                serverIdentity.IsEmpty ? serverPublicKey : serverIdentity,
                credentialResponse,
                serverNonce,
                serverPublicKeyshare);

            var expectedClientMac = new byte[OpaqueSizes.Hash];
            var sessionKey = new byte[OpaqueSizes.SessionKey];
            var serverMac = ke2.AsSpan(OpaqueSizes.Ke2 - OpaqueSizes.Hash);
            OpaqueCore.KeySchedule(ikm, preamble, serverMac, expectedClientMac, sessionKey);
            return new ServerLoginStart(ke2, new ServerLoginState(expectedClientMac, sessionKey));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(record);
            CryptographicOperations.ZeroMemory(serverPrivateKeyshare);
            CryptographicOperations.ZeroMemory(ikm);
        }
    }

    /// <summary>RFC 9807 section 6.4.4 ServerFinish: checks KE3's client MAC in constant time.</summary>
    /// <param name="state">The state from GenerateKe2; the caller disposes it afterwards.</param>
    /// <param name="ke3">The client's KE3 (<see cref="OpaqueSizes.Ke3"/> bytes).</param>
    /// <returns>A copy of the 64-byte session key, or null when the client did not authenticate (wrong password or tampering).</returns>
    /// <exception cref="OpaqueProtocolException">KE3 has the wrong length.</exception>
    public static byte[]? ServerFinish(ServerLoginState state, ReadOnlySpan<byte> ke3)
    {
        ArgumentNullException.ThrowIfNull(state);
        ObjectDisposedException.ThrowIf(state.IsDisposed, state);
        OpaqueCore.CheckLength(ke3, OpaqueSizes.Ke3, "KE3");
        return CryptographicOperations.FixedTimeEquals(state.ExpectedClientMac, ke3)
            ? (byte[])state.SessionKey.Clone()
            : null;
    }

    /// <summary>
    /// RFC 9807 section 10.9 fake record for unknown users: a random client public key (from a random
    /// scalar, as GenerateAuthKeyPair would), a random masking key and an all-zero envelope. Masking makes
    /// the zero envelope invisible on the wire.
    /// </summary>
    private byte[] FakeRecord()
    {
        var record = new byte[OpaqueSizes.RegistrationRecord];
        Span<byte> fakePrivateKey = stackalloc byte[OpaqueSizes.PrivateKey];
        try
        {
            _random.GetScalar(fakePrivateKey);
            Ristretto255.ScalarMultBase(fakePrivateKey, record.AsSpan(0, OpaqueSizes.PublicKey));
            _random.GetBytes(record.AsSpan(OpaqueSizes.PublicKey, OpaqueSizes.Hash));
            return record;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(fakePrivateKey);
        }
    }
}
