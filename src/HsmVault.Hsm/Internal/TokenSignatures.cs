using System.Security.Cryptography;
using HsmVault.Crypto.Signatures;
using Net.Pkcs11Interop.HighLevelAPI;

namespace HsmVault.Hsm.Internal;

/// <summary>The one way the vault signs with a token key of either algorithm.</summary>
internal static class TokenSignatures
{
    /// <summary>
    /// Ed25519 signs the message (CKM_EDDSA); SoftHSM2 has no CKM_ECDSA_SHA256, so for P-256 the
    /// message is hashed here and the digest signed with raw CKM_ECDSA.
    /// </summary>
    public static byte[] Sign(ISession session, IObjectHandle privateKey, SignatureAlgorithm algorithm, ReadOnlySpan<byte> message)
    {
        var (mechanismType, data) = algorithm == SignatureAlgorithm.Ed25519
            ? (Pkcs11Constants.CkmEddsa, message.ToArray())
            : ((ulong)Net.Pkcs11Interop.Common.CKM.CKM_ECDSA, SHA256.HashData(message));
        using var mechanism = Pkcs11Modules.Factories.MechanismFactory.Create(mechanismType);
        return session.Sign(mechanism, privateKey, data);
    }
}
