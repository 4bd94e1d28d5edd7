using System.Security.Cryptography;
using HsmVault.Crypto.Signatures;
using HsmVault.Hsm.Internal;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace HsmVault.Hsm;

/// <summary>
/// Reads, for deployment evidence, what a member's token says about itself and its keys:
/// C_GetTokenInfo, the attributes of every vault key, and key check values; and signs evidence
/// with the member's identity key. Nothing secret leaves the token.
/// </summary>
/// <remarks>
/// Key check values reveal nothing about a key beyond "same key or not":
/// <list type="bullet">
/// <item>OPRF seed: the first 16 bytes of HMAC-SHA512(seed, <see cref="CheckValueMessage"/>). The
/// message does not end in <c>"OprfKey" || 0x01</c>, so it is never an RFC 9807 Expand input and
/// the value is no user's OPRF key.</item>
/// <item>Record key: the 16-byte AES-GCM tag of an empty plaintext with IV <see cref="CheckValueIv"/>
/// and associated data <see cref="CheckValueMessage"/>, i.e. a GMAC. The classic check value, AES of
/// a zero block, would be exactly GCM's hash key H and let anyone forge sealed records.</item>
/// <item>Signing and identity keys: SHA-256 of the public key (the public key is public).</item>
/// </list>
/// </remarks>
public static class DeploymentInspection
{
    /// <summary>The fixed message of every key check value.</summary>
    public static ReadOnlySpan<byte> CheckValueMessage => "HsmVault key check value v1\0"u8;

    /// <summary>The fixed 12-byte AES-GCM IV of the record key's check value (random seal IVs meet it with probability 2^-96).</summary>
    public static ReadOnlySpan<byte> CheckValueIv => "HsmVault KCV"u8;

    /// <summary>Reads the token's identity and the attributes and check values of its vault keys.</summary>
    /// <exception cref="TokenConfigurationException">The token cannot be found or lacks fleet or identity keys.</exception>
    public static TokenInspection Inspect(TokenOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        using var admin = AdminSession.Open(options);
        var info = admin.Slot.GetTokenInfo();
        var identity = new TokenIdentity(
            info.Label.Trim(), info.ManufacturerId.Trim(), info.Model.Trim(), info.SerialNumber.Trim(), info.FirmwareVersion, info.HardwareVersion);
        var keys = FleetKeyHandles.Find(admin.Session, admin.Labels, admin.TokenLabel);
        var native = Pkcs11Modules.NativeOf(options.ModulePath);
        var labels = admin.Labels;
        List<InspectedKey> inspected =
        [
            Key(admin.Session, keys.OprfSeed, labels.OprfSeed, VaultKeyRole.OprfSeed, CheckValueOfHmacKey(admin.Session, keys.OprfSeed)),
            Key(admin.Session, keys.RecordKey, labels.RecordKey, VaultKeyRole.RecordKey, CheckValueOfGcmKey(admin.Session, native, keys.RecordKey)),
            Key(admin.Session, keys.SigningKey, labels.SigningKey, VaultKeyRole.FleetSigningKey, SHA256.HashData(keys.SigningPublicKey.PublicKey)),
            Key(admin.Session, keys.MemberIdentityKey, labels.MemberIdentityKey, VaultKeyRole.MemberIdentityKey, SHA256.HashData(keys.MemberIdentityPublicKey.PublicKey)),
        ];
        return new TokenInspection(identity, keys.SigningPublicKey, keys.MemberIdentityPublicKey, inspected);
    }

    /// <summary>
    /// Signs <paramref name="message"/> with the token's member identity key (Ed25519, or ECDSA
    /// P-256 over SHA-256). Needs only the identity key, not the fleet keys, so a member can sign
    /// a ceremony step before it holds them.
    /// </summary>
    /// <returns>The identity key's public half and the signature.</returns>
    /// <exception cref="TokenConfigurationException">The token has no identity key.</exception>
    public static MemberIdentitySignature SignAsMember(TokenOptions options, ReadOnlySpan<byte> message)
    {
        ArgumentNullException.ThrowIfNull(options);
        using var admin = AdminSession.Open(options);
        var labels = admin.Labels;
        var privateKey = admin.Session.FindSingle(CKO.CKO_PRIVATE_KEY, labels.MemberIdentityKey, admin.TokenLabel);
        var publicKey = admin.Session.FindSingle(CKO.CKO_PUBLIC_KEY, labels.MemberIdentityPublicKey, admin.TokenLabel);
        if (privateKey is null || publicKey is null)
        {
            throw new TokenConfigurationException(
                $"token '{admin.TokenLabel}' has no member identity key '{labels.MemberIdentityKey}'; provision it with `hsmvault fleet init`");
        }

        var key = FleetKeyHandles.ReadPublicKey(admin.Session, publicKey, labels.MemberIdentityPublicKey, admin.TokenLabel);
        return new MemberIdentitySignature(key, TokenSignatures.Sign(admin.Session, privateKey, key.Algorithm, message));
    }

    private static InspectedKey Key(ISession session, IObjectHandle handle, string label, VaultKeyRole role, byte[] checkValue)
    {
        var values = session.GetBools(handle,
            CKA.CKA_LOCAL, CKA.CKA_NEVER_EXTRACTABLE, CKA.CKA_ALWAYS_SENSITIVE, CKA.CKA_SENSITIVE, CKA.CKA_EXTRACTABLE);
        var attributes = new TokenKeyAttributes(values[CKA.CKA_LOCAL], values[CKA.CKA_NEVER_EXTRACTABLE], values[CKA.CKA_ALWAYS_SENSITIVE],
            values[CKA.CKA_SENSITIVE], values[CKA.CKA_EXTRACTABLE]);
        return new InspectedKey(label, role, attributes, checkValue);
    }

    private static byte[] CheckValueOfHmacKey(ISession session, IObjectHandle key)
    {
        using var mechanism = Pkcs11Modules.Factories.MechanismFactory.Create(CKM.CKM_SHA512_HMAC);
        var mac = session.Sign(mechanism, key, CheckValueMessage.ToArray());
        try
        {
            return mac[..16];
        }
        finally
        {
            CryptographicOperations.ZeroMemory(mac);
        }
    }

    private static byte[] CheckValueOfGcmKey(ISession session, NativeCalls native, IObjectHandle key) =>
        native.GcmEncrypt(session, key, CheckValueIv.ToArray(), CheckValueMessage.ToArray(), Pkcs11Constants.GcmTagLength, []);
}

/// <summary>What C_GetTokenInfo says a token is.</summary>
/// <param name="Label">The token label.</param>
/// <param name="Manufacturer">manufacturerID.</param>
/// <param name="Model">model.</param>
/// <param name="Serial">serialNumber.</param>
/// <param name="Firmware">firmwareVersion, "major.minor".</param>
/// <param name="Hardware">hardwareVersion, "major.minor".</param>
public sealed record TokenIdentity(string Label, string Manufacturer, string Model, string Serial, string Firmware, string Hardware);

/// <summary>The vault's keys in a token, by what they are for.</summary>
public enum VaultKeyRole
{
    /// <summary>The fleet's OPRF seed (HMAC-SHA512 key).</summary>
    OprfSeed,

    /// <summary>The fleet's record key (AES-256-GCM).</summary>
    RecordKey,

    /// <summary>The fleet signing key's private half.</summary>
    FleetSigningKey,

    /// <summary>This member's own identity key: generated here, never copied.</summary>
    MemberIdentityKey,
}

/// <summary>One key's attributes and check value as the token reports them.</summary>
public sealed record InspectedKey(string Label, VaultKeyRole Role, TokenKeyAttributes Attributes, byte[] CheckValue);

/// <summary>What <see cref="DeploymentInspection.Inspect"/> read from a token.</summary>
public sealed record TokenInspection(
    TokenIdentity Token, SigningKeyDescription FleetSigningKey, SigningKeyDescription MemberIdentityKey, IReadOnlyList<InspectedKey> Keys);

/// <summary>A signature by a member's identity key, and that key.</summary>
public sealed record MemberIdentitySignature(SigningKeyDescription Key, byte[] Signature);
