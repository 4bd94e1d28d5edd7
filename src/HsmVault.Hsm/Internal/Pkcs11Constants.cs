namespace HsmVault.Hsm.Internal;

/// <summary>PKCS#11 3.0 values that Pkcs11Interop 5.3's enums predate, and DER constants.</summary>
internal static class Pkcs11Constants
{
    /// <summary>CKK_EC_EDWARDS (PKCS#11 3.0).</summary>
    public const ulong CkkEcEdwards = 0x40;

    /// <summary>CKM_EC_EDWARDS_KEY_PAIR_GEN (PKCS#11 3.0).</summary>
    public const ulong CkmEcEdwardsKeyPairGen = 0x1055;

    /// <summary>CKM_EDDSA (PKCS#11 3.0).</summary>
    public const ulong CkmEddsa = 0x1057;

    /// <summary>
    /// NSS's CKA_NSS_DB (historically CKA_NETSCAPE_DB): the public value NSS softoken files a
    /// token private key under. A vendor attribute: only ever sent to a token that asked for it.
    /// </summary>
    public const ulong CkaNssDb = 0xD5A0DB00;

    /// <summary>The application tag on every data object the vault stores.</summary>
    public const string Application = "hsmvault";

    /// <summary>DER of OID 1.3.101.112 (id-Ed25519), the CKA_EC_PARAMS SoftHSM2 2.6 accepts for Ed25519.</summary>
    public static ReadOnlySpan<byte> Ed25519Params => [0x06, 0x03, 0x2B, 0x65, 0x70];

    /// <summary>DER of OID 1.2.840.10045.3.1.7 (prime256v1 / P-256).</summary>
    public static ReadOnlySpan<byte> P256Params => [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];

    /// <summary>AES-GCM IV length: 96 bits, the length GCM is designed for (NIST SP 800-38D §5.2.1.1).</summary>
    public const int GcmIvLength = 12;

    /// <summary>AES-GCM tag length: 128 bits.</summary>
    public const int GcmTagLength = 16;
}
