using System.Buffers.Binary;
using System.Security.Cryptography;
using HsmVault.Crypto.Opaque;

namespace HsmVault.Crypto.Internal;

/// <summary>
/// The pieces of RFC 9807 shared by client and server: key derivation for the OPRF and for 3DH, the
/// envelope (section 4.1), the credential-response mask (section 5.3), and the 3DH key schedule
/// (section 6.4.2). Identities passed as empty spans mean "absent", i.e. the public keys (section 4.1.1).
/// </summary>
internal static class OpaqueCore
{
    private static ReadOnlySpan<byte> OprfKeyInfo => "OPAQUE-DeriveKeyPair"u8;

    private static ReadOnlySpan<byte> DiffieHellmanKeyInfo => "OPAQUE-DeriveDiffieHellmanKeyPair"u8;

    /// <summary>Every OPAQUE message has a fixed size for this suite; anything else is malformed.</summary>
    internal static void CheckLength(ReadOnlySpan<byte> message, int expected, string name)
    {
        if (message.Length != expected)
        {
            throw new OpaqueProtocolException($"{name} must be {expected} bytes, not {message.Length}.");
        }
    }

    /// <summary>RFC 9807 section 6.4.1 DeriveDiffieHellmanKeyPair(seed) = DeriveKeyPair(seed, "OPAQUE-DeriveDiffieHellmanKeyPair").</summary>
    internal static void DeriveDiffieHellmanKeyPair(ReadOnlySpan<byte> seed, Span<byte> privateKey, Span<byte> publicKey) =>
        Oprf.DeriveKeyPair(seed, DiffieHellmanKeyInfo, privateKey, publicKey);

    /// <summary>
    /// RFC 9807 section 5.3 (CreateRegistrationResponse and CreateCredentialResponse): the per-user OPRF key is
    /// DeriveKeyPair(Expand(oprf_seed, credential_identifier || "OprfKey", Nok), "OPAQUE-DeriveKeyPair").
    /// The Expand runs in the token through <paramref name="expander"/>, so oprf_seed never leaves it.
    /// </summary>
    internal static void EvaluateOprf(
        IOprfSeedExpander expander, ReadOnlySpan<byte> credentialIdentifier, ReadOnlySpan<byte> blindedElement, Span<byte> evaluatedElement)
    {
        var info = new byte[credentialIdentifier.Length + "OprfKey"u8.Length];
        credentialIdentifier.CopyTo(info);
        "OprfKey"u8.CopyTo(info.AsSpan(credentialIdentifier.Length));

        Span<byte> seed = stackalloc byte[Oprf.PrivateKeySize];
        Span<byte> oprfKey = stackalloc byte[Oprf.PrivateKeySize];
        try
        {
            expander.ExpandOprfSeed(info, seed);
            Oprf.DerivePrivateKey(seed, OprfKeyInfo, oprfKey);
            Oprf.BlindEvaluate(oprfKey, blindedElement, evaluatedElement);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(seed);
            CryptographicOperations.ZeroMemory(oprfKey);
        }
    }

    /// <summary>
    /// RFC 9807 sections 5.2.3 and 6.3.2.2: randomized_password = Extract("", oprf_output || Stretch(oprf_output)).
    /// </summary>
    internal static void RandomizedPassword(
        ReadOnlySpan<byte> password, ReadOnlySpan<byte> blind, ReadOnlySpan<byte> evaluatedElement, IKeyStretchingFunction ksf, Span<byte> randomizedPassword)
    {
        var oprfOutput = new byte[Oprf.OutputSize];
        byte[]? stretched = null;
        byte[]? ikm = null;
        try
        {
            Oprf.Finalize(password, blind, evaluatedElement, oprfOutput);
            stretched = ksf.Stretch(oprfOutput);
            ikm = new byte[oprfOutput.Length + stretched.Length];
            oprfOutput.CopyTo(ikm, 0);
            stretched.CopyTo(ikm, oprfOutput.Length);
            Kdf.Extract(ikm, randomizedPassword);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(oprfOutput);
            CryptographicOperations.ZeroMemory(stretched);
            CryptographicOperations.ZeroMemory(ikm);
        }
    }

    /// <summary>RFC 9807 section 4.1.2 (Store and Recover): masking_key = Expand(randomized_password, "MaskingKey", Nh).</summary>
    internal static void MaskingKey(ReadOnlySpan<byte> randomizedPassword, Span<byte> maskingKey) =>
        Kdf.Expand(randomizedPassword, "MaskingKey"u8, maskingKey[..OpaqueSizes.Hash]);

    /// <summary>
    /// RFC 9807 sections 5.3 and 6.3.2.2: masked_response = server_public_key || envelope XOR
    /// Expand(masking_key, masking_nonce || "CredentialResponsePad", Npk + Nn + Nm). XOR is its own inverse,
    /// so the same call masks (server) and unmasks (client), in place.
    /// </summary>
    internal static void ApplyCredentialResponsePad(ReadOnlySpan<byte> maskingKey, ReadOnlySpan<byte> maskingNonce, Span<byte> data)
    {
        Span<byte> pad = stackalloc byte[OpaqueSizes.MaskedResponse];
        try
        {
            Kdf.Expand(maskingKey, maskingNonce, "CredentialResponsePad"u8, pad);
            for (var i = 0; i < pad.Length; i++)
            {
                data[i] ^= pad[i];
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(pad);
        }
    }

    /// <summary>
    /// RFC 9807 section 4.1.1 CreateCleartextCredentials, serialized: server_public_key ||
    /// I2OSP(len(server_identity), 2) || server_identity || I2OSP(len(client_identity), 2) || client_identity,
    /// absent identities defaulting to the public keys.
    /// </summary>
    internal static byte[] CleartextCredentials(
        ReadOnlySpan<byte> serverPublicKey, ReadOnlySpan<byte> clientPublicKey, ReadOnlySpan<byte> serverIdentity, ReadOnlySpan<byte> clientIdentity)
    {
        var server = serverIdentity.IsEmpty ? serverPublicKey : serverIdentity;
        var client = clientIdentity.IsEmpty ? clientPublicKey : clientIdentity;
        var result = new byte[serverPublicKey.Length + 2 + server.Length + 2 + client.Length];
        var writer = new SpanWriter(result);
        writer.Write(serverPublicKey);
        writer.WriteWithLength(server);
        writer.WriteWithLength(client);
        return result;
    }

    /// <summary>
    /// RFC 9807 section 4.1.2 Store with the envelope nonce supplied. Writes the envelope
    /// (envelope_nonce || auth_tag), the client public key and the export key.
    /// </summary>
    internal static void Store(
        ReadOnlySpan<byte> randomizedPassword,
        ReadOnlySpan<byte> envelopeNonce,
        ReadOnlySpan<byte> serverPublicKey,
        ReadOnlySpan<byte> serverIdentity,
        ReadOnlySpan<byte> clientIdentity,
        Span<byte> envelope,
        Span<byte> clientPublicKey,
        Span<byte> exportKey)
    {
        Span<byte> clientPrivateKey = stackalloc byte[OpaqueSizes.PrivateKey];
        try
        {
            DeriveEnvelopeKeys(randomizedPassword, envelopeNonce, clientPrivateKey, clientPublicKey, exportKey);
            var cleartext = CleartextCredentials(serverPublicKey, clientPublicKey, serverIdentity, clientIdentity);
            envelopeNonce.CopyTo(envelope);
            AuthTag(randomizedPassword, envelopeNonce, cleartext, envelope.Slice(OpaqueSizes.Nonce, OpaqueSizes.Hash));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(clientPrivateKey);
        }
    }

    /// <summary>
    /// RFC 9807 section 4.1.3 Recover. Returns false (EnvelopeRecoveryError) when the auth tag does not match,
    /// which is what a wrong password looks like; the comparison is constant-time.
    /// </summary>
    internal static bool Recover(
        ReadOnlySpan<byte> randomizedPassword,
        ReadOnlySpan<byte> serverPublicKey,
        ReadOnlySpan<byte> envelope,
        ReadOnlySpan<byte> serverIdentity,
        ReadOnlySpan<byte> clientIdentity,
        Span<byte> clientPrivateKey,
        Span<byte> clientPublicKey,
        Span<byte> exportKey)
    {
        var envelopeNonce = envelope[..OpaqueSizes.Nonce];
        Span<byte> expectedTag = stackalloc byte[OpaqueSizes.Hash];
        DeriveEnvelopeKeys(randomizedPassword, envelopeNonce, clientPrivateKey, clientPublicKey, exportKey);
        var cleartext = CleartextCredentials(serverPublicKey, clientPublicKey, serverIdentity, clientIdentity);
        AuthTag(randomizedPassword, envelopeNonce, cleartext, expectedTag);
        if (CryptographicOperations.FixedTimeEquals(expectedTag, envelope.Slice(OpaqueSizes.Nonce, OpaqueSizes.Hash)))
        {
            return true;
        }

        clientPrivateKey.Clear();
        exportKey.Clear();
        return false;
    }

    /// <summary>
    /// RFC 9807 section 6.4.2 Preamble: "OPAQUEv1-" || I2OSP(len(context), 2) || context ||
    /// I2OSP(len(client_identity), 2) || client_identity || ke1 || I2OSP(len(server_identity), 2) ||
    /// server_identity || credential_response || server_nonce || server_public_keyshare.
    /// </summary>
    internal static byte[] Preamble(
        ReadOnlySpan<byte> context,
        ReadOnlySpan<byte> clientIdentity,
        ReadOnlySpan<byte> ke1,
        ReadOnlySpan<byte> serverIdentity,
        ReadOnlySpan<byte> credentialResponse,
        ReadOnlySpan<byte> serverNonce,
        ReadOnlySpan<byte> serverPublicKeyshare)
    {
        ReadOnlySpan<byte> version = "OPAQUEv1-"u8;
        var result = new byte[version.Length + 2 + context.Length + 2 + clientIdentity.Length + ke1.Length + 2
            + serverIdentity.Length + credentialResponse.Length + serverNonce.Length + serverPublicKeyshare.Length];
        var writer = new SpanWriter(result);
        writer.Write(version);
        writer.WriteWithLength(context);
        writer.WriteWithLength(clientIdentity);
        writer.Write(ke1);
        writer.WriteWithLength(serverIdentity);
        writer.Write(credentialResponse);
        writer.Write(serverNonce);
        writer.Write(serverPublicKeyshare);
        return result;
    }

    /// <summary>
    /// RFC 9807 section 6.4.2 DeriveKeys plus the two MACs of sections 6.4.3 and 6.4.4:
    /// server_mac = MAC(Km2, Hash(preamble)), client_mac = MAC(Km3, Hash(preamble || server_mac)).
    /// </summary>
    internal static void KeySchedule(
        ReadOnlySpan<byte> ikm, ReadOnlySpan<byte> preamble, Span<byte> serverMac, Span<byte> clientMac, Span<byte> sessionKey)
    {
        Span<byte> prk = stackalloc byte[OpaqueSizes.Hash];
        Span<byte> handshakeSecret = stackalloc byte[OpaqueSizes.Hash];
        Span<byte> km2 = stackalloc byte[OpaqueSizes.Hash];
        Span<byte> km3 = stackalloc byte[OpaqueSizes.Hash];
        Span<byte> preambleHash = stackalloc byte[OpaqueSizes.Hash];
        try
        {
            SHA512.HashData(preamble, preambleHash);
            Kdf.Extract(ikm, prk);
            Kdf.DeriveSecret(prk, "HandshakeSecret"u8, preambleHash, handshakeSecret);
            Kdf.DeriveSecret(prk, "SessionKey"u8, preambleHash, sessionKey);
            Kdf.DeriveSecret(handshakeSecret, "ServerMAC"u8, [], km2);
            Kdf.DeriveSecret(handshakeSecret, "ClientMAC"u8, [], km3);
            Kdf.Mac(km2, preambleHash, serverMac);

            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA512);
            hash.AppendData(preamble);
            hash.AppendData(serverMac);
            hash.GetHashAndReset(preambleHash);
            Kdf.Mac(km3, preambleHash, clientMac);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(prk);
            CryptographicOperations.ZeroMemory(handshakeSecret);
            CryptographicOperations.ZeroMemory(km2);
            CryptographicOperations.ZeroMemory(km3);
        }
    }

    /// <summary>
    /// RFC 9807 section 4.1.2: export_key = Expand(rp, nonce || "ExportKey", Nh) and the client's key pair
    /// from seed = Expand(rp, nonce || "PrivateKey", Nseed).
    /// </summary>
    private static void DeriveEnvelopeKeys(
        ReadOnlySpan<byte> randomizedPassword, ReadOnlySpan<byte> envelopeNonce, Span<byte> clientPrivateKey, Span<byte> clientPublicKey, Span<byte> exportKey)
    {
        Span<byte> seed = stackalloc byte[OpaqueSizes.Seed];
        try
        {
            Kdf.Expand(randomizedPassword, envelopeNonce, "ExportKey"u8, exportKey[..OpaqueSizes.Hash]);
            Kdf.Expand(randomizedPassword, envelopeNonce, "PrivateKey"u8, seed);
            DeriveDiffieHellmanKeyPair(seed, clientPrivateKey, clientPublicKey);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(seed);
        }
    }

    /// <summary>RFC 9807 section 4.1.2: auth_tag = MAC(Expand(rp, nonce || "AuthKey", Nh), nonce || cleartext_credentials).</summary>
    private static void AuthTag(ReadOnlySpan<byte> randomizedPassword, ReadOnlySpan<byte> envelopeNonce, ReadOnlySpan<byte> cleartext, Span<byte> tag)
    {
        Span<byte> authKey = stackalloc byte[OpaqueSizes.Hash];
        var message = new byte[envelopeNonce.Length + cleartext.Length];
        try
        {
            Kdf.Expand(randomizedPassword, envelopeNonce, "AuthKey"u8, authKey);
            envelopeNonce.CopyTo(message);
            cleartext.CopyTo(message.AsSpan(envelopeNonce.Length));
            Kdf.Mac(authKey, message, tag);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(authKey);
        }
    }

    /// <summary>Sequential writer for the fixed layouts above; lengths are I2OSP(len, 2), big-endian.</summary>
    private ref struct SpanWriter(Span<byte> destination)
    {
        private readonly Span<byte> _destination = destination;
        private int _offset;

        public void Write(ReadOnlySpan<byte> data)
        {
            data.CopyTo(_destination[_offset..]);
            _offset += data.Length;
        }

        public void WriteWithLength(ReadOnlySpan<byte> data)
        {
            if (data.Length > ushort.MaxValue)
            {
                throw new ArgumentException("A length-prefixed field is longer than 65535 bytes.", nameof(data));
            }

            BinaryPrimitives.WriteUInt16BigEndian(_destination[_offset..], (ushort)data.Length);
            _offset += 2;
            Write(data);
        }
    }
}
