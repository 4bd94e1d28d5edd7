using System.Security.Cryptography;
using HsmVault.Crypto.Internal;

namespace HsmVault.Crypto.Opaque;

/// <summary>
/// The client side of OPAQUE-3DH (RFC 9807), ristretto255-SHA512. Client and server identities are absent,
/// so both default to the public keys (RFC 9807 section 4.1.1).
/// </summary>
public sealed class OpaqueClient
{
    private readonly OpaqueConfiguration _configuration;
    private readonly IOpaqueRandom _random;

    /// <summary>Creates a client.</summary>
    /// <param name="configuration">The OPAQUE configuration published by the fleet (context and KSF).</param>
    public OpaqueClient(OpaqueConfiguration configuration)
        : this(configuration, SystemOpaqueRandom.Instance)
    {
    }

    /// <summary>Creates a client with a chosen randomness source, so tests can replay the RFC 9807 vectors.</summary>
    internal OpaqueClient(OpaqueConfiguration configuration, IOpaqueRandom random)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        ArgumentNullException.ThrowIfNull(random);
        _configuration = configuration;
        _random = random;
    }

    /// <summary>RFC 9807 section 5.2.1 CreateRegistrationRequest: blinds the password.</summary>
    /// <param name="password">The password (bytes; the caller chooses the encoding, e.g. UTF-8).</param>
    /// <returns>The RegistrationRequest and the state to keep for <see cref="FinalizeRegistrationRequest(ClientRegistrationState, ReadOnlySpan{byte})"/>.</returns>
    public ClientRegistrationStart CreateRegistrationRequest(ReadOnlySpan<byte> password)
    {
        var blind = new byte[Ristretto255.ScalarSize];
        _random.GetScalar(blind);
        var state = new ClientRegistrationState(password, blind);
        var request = new byte[OpaqueSizes.RegistrationRequest];
        Oprf.Blind(password, blind, request);
        return new ClientRegistrationStart(request, state);
    }

    /// <summary>RFC 9807 section 5.2.3 FinalizeRegistrationRequest.</summary>
    /// <param name="state">The state from <see cref="CreateRegistrationRequest"/>; the caller disposes it.</param>
    /// <param name="registrationResponse">The server's RegistrationResponse (<see cref="OpaqueSizes.RegistrationResponse"/> bytes).</param>
    /// <returns>The RegistrationRecord to upload and the export key.</returns>
    /// <exception cref="OpaqueProtocolException">The response is malformed or holds an invalid element.</exception>
    public ClientRegistrationFinish FinalizeRegistrationRequest(ClientRegistrationState state, ReadOnlySpan<byte> registrationResponse) =>
        FinalizeRegistrationRequest(state, registrationResponse, default, default);

    /// <summary>FinalizeRegistrationRequest with explicit identities (empty = absent), for the RFC 9807 vectors that set them.</summary>
    internal ClientRegistrationFinish FinalizeRegistrationRequest(
        ClientRegistrationState state, ReadOnlySpan<byte> registrationResponse, ReadOnlySpan<byte> serverIdentity, ReadOnlySpan<byte> clientIdentity)
    {
        ArgumentNullException.ThrowIfNull(state);
        ObjectDisposedException.ThrowIf(state.IsDisposed, state);
        OpaqueCore.CheckLength(registrationResponse, OpaqueSizes.RegistrationResponse, "RegistrationResponse");
        var evaluatedElement = registrationResponse[..Ristretto255.ElementSize];
        var serverPublicKey = registrationResponse[Ristretto255.ElementSize..];
        Ristretto255.ValidateElement(evaluatedElement, "evaluated element");
        Ristretto255.ValidateElement(serverPublicKey, "server public key");

        Span<byte> randomizedPassword = stackalloc byte[OpaqueSizes.Hash];
        Span<byte> envelopeNonce = stackalloc byte[OpaqueSizes.Nonce];
        try
        {
            OpaqueCore.RandomizedPassword(state.Password, state.Blind, evaluatedElement, _configuration.Ksf, randomizedPassword);
            _random.GetBytes(envelopeNonce);

            // RegistrationRecord: client_public_key || masking_key || envelope (RFC 9807 section 5.1).
            var record = new byte[OpaqueSizes.RegistrationRecord];
            var exportKey = new byte[OpaqueSizes.ExportKey];
            OpaqueCore.MaskingKey(randomizedPassword, record.AsSpan(OpaqueSizes.PublicKey, OpaqueSizes.Hash));
            OpaqueCore.Store(
                randomizedPassword,
                envelopeNonce,
                serverPublicKey,
                serverIdentity,
                clientIdentity,
                record.AsSpan(OpaqueSizes.PublicKey + OpaqueSizes.Hash, OpaqueSizes.Envelope),
                record.AsSpan(0, OpaqueSizes.PublicKey),
                exportKey);
            return new ClientRegistrationFinish(record, exportKey);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(randomizedPassword);
        }
    }

    /// <summary>RFC 9807 section 6.2.1 GenerateKE1: blinds the password and starts 3DH.</summary>
    /// <param name="password">The password (same encoding as at registration).</param>
    /// <returns>KE1 and the state to keep for <see cref="GenerateKe3(ClientLoginState, ReadOnlySpan{byte})"/>.</returns>
    public ClientLoginStart GenerateKe1(ReadOnlySpan<byte> password)
    {
        var blind = new byte[Ristretto255.ScalarSize];
        _random.GetScalar(blind);
        var ke1 = new byte[OpaqueSizes.Ke1];
        var clientSecret = new byte[OpaqueSizes.PrivateKey];
        var state = new ClientLoginState(password, blind, clientSecret, ke1);

        // KE1 = blinded_message || client_nonce || client_public_keyshare (RFC 9807 sections 5.1 and 6.1).
        Oprf.Blind(password, blind, ke1.AsSpan(0, Ristretto255.ElementSize));
        _random.GetBytes(ke1.AsSpan(Ristretto255.ElementSize, OpaqueSizes.Nonce));
        Span<byte> keyshareSeed = stackalloc byte[OpaqueSizes.Seed];
        _random.GetBytes(keyshareSeed);
        OpaqueCore.DeriveDiffieHellmanKeyPair(keyshareSeed, clientSecret, ke1.AsSpan(Ristretto255.ElementSize + OpaqueSizes.Nonce, OpaqueSizes.PublicKey));
        CryptographicOperations.ZeroMemory(keyshareSeed);
        return new ClientLoginStart((byte[])ke1.Clone(), state);
    }

    /// <summary>RFC 9807 section 6.2.2 GenerateKE3: recovers the credentials and authenticates the server.</summary>
    /// <param name="state">The state from <see cref="GenerateKe1"/>; the caller disposes it.</param>
    /// <param name="ke2">The server's KE2 (<see cref="OpaqueSizes.Ke2"/> bytes).</param>
    /// <returns>
    /// KE3, the session key and the export key; or null when KE2 does not authenticate: a wrong password
    /// (the envelope does not open) or a server that does not hold the registered key.
    /// </returns>
    /// <exception cref="OpaqueProtocolException">KE2 is malformed or holds an invalid element.</exception>
    public ClientLoginFinish? GenerateKe3(ClientLoginState state, ReadOnlySpan<byte> ke2) => GenerateKe3(state, ke2, default, default);

    /// <summary>GenerateKE3 with explicit identities (empty = absent), for the RFC 9807 vectors that set them.</summary>
    internal ClientLoginFinish? GenerateKe3(
        ClientLoginState state, ReadOnlySpan<byte> ke2, ReadOnlySpan<byte> serverIdentity, ReadOnlySpan<byte> clientIdentity)
    {
        ArgumentNullException.ThrowIfNull(state);
        ObjectDisposedException.ThrowIf(state.IsDisposed, state);
        OpaqueCore.CheckLength(ke2, OpaqueSizes.Ke2, "KE2");

        // KE2 = evaluated_message || masking_nonce || masked_response || server_nonce || server_public_keyshare || server_mac.
        var credentialResponse = ke2[..OpaqueSizes.CredentialResponse];
        var evaluatedElement = ke2[..Ristretto255.ElementSize];
        var maskingNonce = ke2.Slice(Ristretto255.ElementSize, OpaqueSizes.Nonce);
        var maskedResponse = ke2.Slice(Ristretto255.ElementSize + OpaqueSizes.Nonce, OpaqueSizes.MaskedResponse);
        var serverNonce = ke2.Slice(OpaqueSizes.CredentialResponse, OpaqueSizes.Nonce);
        var serverPublicKeyshare = ke2.Slice(OpaqueSizes.CredentialResponse + OpaqueSizes.Nonce, OpaqueSizes.PublicKey);
        var serverMac = ke2[(OpaqueSizes.Ke2 - OpaqueSizes.Hash)..];
        Ristretto255.ValidateElement(evaluatedElement, "evaluated element");
        Ristretto255.ValidateElement(serverPublicKeyshare, "server public keyshare");

        var randomizedPassword = new byte[OpaqueSizes.Hash];
        var maskingKey = new byte[OpaqueSizes.Hash];
        var unmasked = new byte[OpaqueSizes.MaskedResponse];
        var clientPrivateKey = new byte[OpaqueSizes.PrivateKey];
        var clientPublicKey = new byte[OpaqueSizes.PublicKey];
        var exportKey = new byte[OpaqueSizes.ExportKey];
        var ikm = new byte[3 * Ristretto255.ElementSize];
        var expectedServerMac = new byte[OpaqueSizes.Hash];
        var clientMac = new byte[OpaqueSizes.Ke3];
        var sessionKey = new byte[OpaqueSizes.SessionKey];
        var succeeded = false;
        try
        {
            // RFC 9807 section 6.3.2.2 RecoverCredentials.
            OpaqueCore.RandomizedPassword(state.Password, state.Blind, evaluatedElement, _configuration.Ksf, randomizedPassword);
            OpaqueCore.MaskingKey(randomizedPassword, maskingKey);
            maskedResponse.CopyTo(unmasked);
            OpaqueCore.ApplyCredentialResponsePad(maskingKey, maskingNonce, unmasked);
            var serverPublicKey = unmasked.AsSpan(0, OpaqueSizes.PublicKey);
            var envelope = unmasked.AsSpan(OpaqueSizes.PublicKey);
            if (!OpaqueCore.Recover(randomizedPassword, serverPublicKey, envelope, serverIdentity, clientIdentity, clientPrivateKey, clientPublicKey, exportKey))
            {
                return null;
            }

            // The envelope authenticated this key at registration, so an invalid one is a broken server, not a wrong password.
            Ristretto255.ValidateElement(serverPublicKey, "server public key");

            // RFC 9807 section 6.4.3 AuthClientFinalize: dh1 = client_secret * server_public_keyshare,
            // dh2 = client_secret * server_public_key, dh3 = client_private_key * server_public_keyshare.
            Ristretto255.ScalarMult(state.ClientSecret, serverPublicKeyshare, ikm.AsSpan(0, 32));
            Ristretto255.ScalarMult(state.ClientSecret, serverPublicKey, ikm.AsSpan(32, 32));
            Ristretto255.ScalarMult(clientPrivateKey, serverPublicKeyshare, ikm.AsSpan(64, 32));

            var preamble = OpaqueCore.Preamble(
                _configuration.Context.Span,
                clientIdentity.IsEmpty ? clientPublicKey : clientIdentity,
                state.Ke1,
                serverIdentity.IsEmpty ? serverPublicKey : serverIdentity,
                credentialResponse,
                serverNonce,
                serverPublicKeyshare);
            OpaqueCore.KeySchedule(ikm, preamble, expectedServerMac, clientMac, sessionKey);
            if (!CryptographicOperations.FixedTimeEquals(expectedServerMac, serverMac))
            {
                return null;
            }

            succeeded = true;
            return new ClientLoginFinish(clientMac, sessionKey, exportKey, serverPublicKey.ToArray());
        }
        finally
        {
            CryptographicOperations.ZeroMemory(randomizedPassword);
            CryptographicOperations.ZeroMemory(maskingKey);
            CryptographicOperations.ZeroMemory(unmasked);
            CryptographicOperations.ZeroMemory(clientPrivateKey);
            CryptographicOperations.ZeroMemory(ikm);
            CryptographicOperations.ZeroMemory(expectedServerMac);
            if (!succeeded)
            {
                CryptographicOperations.ZeroMemory(exportKey);
                CryptographicOperations.ZeroMemory(sessionKey);
            }
        }
    }
}
