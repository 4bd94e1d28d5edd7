using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace HsmVault.Hsm.Internal;

/// <summary>Handles of the fleet keys in one login of one token. Handles are re-found after a reconnect.</summary>
internal sealed record FleetKeyHandles(
    IObjectHandle OprfSeed,
    IObjectHandle RecordKey,
    IObjectHandle SigningKey,
    SigningKeyDescription SigningPublicKey)
{
    /// <exception cref="TokenConfigurationException">A fleet key is missing, duplicated or of an unexpected type.</exception>
    public static FleetKeyHandles Find(ISession session, FleetKeyLabels labels, string tokenLabel)
    {
        var oprfSeed = Require(session, CKO.CKO_SECRET_KEY, labels.OprfSeed, tokenLabel);
        var recordKey = Require(session, CKO.CKO_SECRET_KEY, labels.RecordKey, tokenLabel);
        var signingKey = Require(session, CKO.CKO_PRIVATE_KEY, labels.SigningKey, tokenLabel);
        var signingPublic = Require(session, CKO.CKO_PUBLIC_KEY, labels.SigningPublicKey, tokenLabel);
        return new FleetKeyHandles(oprfSeed, recordKey, signingKey, ReadSigningPublicKey(session, signingPublic, labels, tokenLabel));
    }

    public static SigningKeyDescription ReadSigningPublicKey(ISession session, IObjectHandle publicKey, FleetKeyLabels labels, string tokenLabel)
    {
        var keyType = session.GetULong(publicKey, CKA.CKA_KEY_TYPE);
        var point = session.GetBytes(publicKey, CKA.CKA_EC_POINT);
        if (keyType == Pkcs11Constants.CkkEcEdwards)
        {
            return new SigningKeyDescription(SignatureAlgorithm.Ed25519, EcPoint.Unwrap(point, 32));
        }

        if (keyType == (ulong)CKK.CKK_EC && session.GetBytes(publicKey, CKA.CKA_EC_PARAMS).AsSpan().SequenceEqual(Pkcs11Constants.P256Params))
        {
            return new SigningKeyDescription(SignatureAlgorithm.EcdsaP256Sha256, EcPoint.Unwrap(point, 65));
        }

        throw new TokenConfigurationException(
            $"token '{tokenLabel}' key '{labels.SigningPublicKey}' is neither Ed25519 nor ECDSA P-256 (CKA_KEY_TYPE 0x{keyType:x})");
    }

    private static IObjectHandle Require(ISession session, CKO objectClass, string label, string tokenLabel) =>
        session.FindSingle(objectClass, label, tokenLabel)
        ?? throw new TokenConfigurationException(
            $"token '{tokenLabel}' has no key '{label}'; provision it with `hsmvault token init`")
        {
            FleetKeysMissing = true,
        };
}
