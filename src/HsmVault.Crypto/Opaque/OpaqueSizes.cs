namespace HsmVault.Crypto.Opaque;

/// <summary>Wire sizes, in bytes, of OPAQUE-3DH messages for ristretto255-SHA512 (RFC 9807 sections 5.1 and 6.1).</summary>
public static class OpaqueSizes
{
    /// <summary>RegistrationRequest: blinded_message[Noe].</summary>
    public const int RegistrationRequest = 32;

    /// <summary>RegistrationResponse: evaluated_message[Noe] || server_public_key[Npk].</summary>
    public const int RegistrationResponse = 64;

    /// <summary>RegistrationRecord: client_public_key[Npk] || masking_key[Nh] || envelope[Nn + Nm].</summary>
    public const int RegistrationRecord = 192;

    /// <summary>KE1: blinded_message[Noe] || client_nonce[Nn] || client_public_keyshare[Npk].</summary>
    public const int Ke1 = 96;

    /// <summary>KE2: CredentialResponse (evaluated_message, masking_nonce, masked_response) || server_nonce || server_public_keyshare || server_mac.</summary>
    public const int Ke2 = 320;

    /// <summary>KE3: client_mac[Nm].</summary>
    public const int Ke3 = 64;

    /// <summary>The session key (Nx).</summary>
    public const int SessionKey = 64;

    /// <summary>The export key (Nh).</summary>
    public const int ExportKey = 64;

    /// <summary>An AKE public key (Npk): a ristretto255 element.</summary>
    public const int PublicKey = 32;

    /// <summary>An AKE private key (Nsk): a ristretto255 scalar.</summary>
    public const int PrivateKey = 32;

    /// <summary>Nn: envelope, masking and handshake nonces.</summary>
    internal const int Nonce = 32;

    /// <summary>Nseed: seeds for DeriveDiffieHellmanKeyPair.</summary>
    internal const int Seed = 32;

    /// <summary>Nh = Nm = Nx for SHA-512.</summary>
    internal const int Hash = 64;

    /// <summary>Envelope: envelope_nonce[Nn] || auth_tag[Nm].</summary>
    internal const int Envelope = Nonce + Hash;

    /// <summary>masked_response: Npk + Nn + Nm.</summary>
    internal const int MaskedResponse = PublicKey + Envelope;

    /// <summary>CredentialResponse: evaluated_message[Noe] || masking_nonce[Nn] || masked_response.</summary>
    internal const int CredentialResponse = 32 + Nonce + MaskedResponse;
}
