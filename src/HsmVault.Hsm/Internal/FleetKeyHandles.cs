using HsmVault.Crypto.Signatures;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace HsmVault.Hsm.Internal;

/// <summary>Handles of the fleet keys in one login of one token. Handles are re-found after a reconnect.</summary>
internal sealed record FleetKeyHandles(
    IObjectHandle OprfSeed,
    IObjectHandle RecordKey,
    IObjectHandle SigningKey,
    SigningKeyDescription SigningPublicKey,
    IObjectHandle MemberIdentityKey,
    SigningKeyDescription MemberIdentityPublicKey)
{
    /// <exception cref="TokenConfigurationException">A fleet key is missing, duplicated or of an unexpected type.</exception>
    public static FleetKeyHandles Find(ISession session, FleetKeyLabels labels, string tokenLabel)
    {
        var oprfSeed = Require(session, CKO.CKO_SECRET_KEY, labels.OprfSeed, tokenLabel);
        var recordKey = Require(session, CKO.CKO_SECRET_KEY, labels.RecordKey, tokenLabel);
        var signingKey = Require(session, CKO.CKO_PRIVATE_KEY, labels.SigningKey, tokenLabel);
        var signingPublic = Require(session, CKO.CKO_PUBLIC_KEY, labels.SigningPublicKey, tokenLabel);
        var identityKey = Require(session, CKO.CKO_PRIVATE_KEY, labels.MemberIdentityKey, tokenLabel);
        var identityPublic = Require(session, CKO.CKO_PUBLIC_KEY, labels.MemberIdentityPublicKey, tokenLabel);
        return new FleetKeyHandles(
            oprfSeed,
            recordKey,
            signingKey,
            ReadPublicKey(session, signingPublic, labels.SigningPublicKey, tokenLabel),
            identityKey,
            ReadPublicKey(session, identityPublic, labels.MemberIdentityPublicKey, tokenLabel));
    }

    /// <summary>Reads an Ed25519 or P-256 public key object.</summary>
    public static SigningKeyDescription ReadPublicKey(ISession session, IObjectHandle publicKey, string keyLabel, string tokenLabel)
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
            $"token '{tokenLabel}' key '{keyLabel}' is neither Ed25519 nor ECDSA P-256 (CKA_KEY_TYPE 0x{keyType:x})");
    }

    private static IObjectHandle Require(ISession session, CKO objectClass, string label, string tokenLabel) =>
        session.FindSingle(objectClass, label, tokenLabel)
        ?? throw new TokenConfigurationException(
            $"token '{tokenLabel}' has no key '{label}'; provision it with `hsmvault token init`")
        {
            FleetKeysMissing = true,
        };
}
