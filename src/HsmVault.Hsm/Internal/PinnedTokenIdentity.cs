using System.Security.Cryptography;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;
using Net.Pkcs11Interop.HighLevelAPI.Factories;

namespace HsmVault.Hsm.Internal;

/// <summary>
/// What the token was when the daemon first opened it, and the check that a token found again
/// after a lost session is that same token.
/// </summary>
/// <remarks>
/// A token is found again by its label (and serial): slot ids change when a token is pulled out
/// and put back. But a label is only a name, and some implementations give every token the same
/// serial (NSS softoken: 0000000000000000). Another token under the same name — a spare put in
/// by mistake, a re-initialised one, a planted one — would hold other keys, and the daemon would
/// answer wrongly with them: a right password refused (and charged) because the OPRF seed
/// differs, records that fail to unseal, commands signed with a key nobody trusts. So before a
/// reconnected token is used, it must prove it holds the same secrets: the same serial, the same
/// public keys, a fresh challenge signed by the member identity key and the fleet signing key
/// that verifies under the keys pinned at start-up (a public key object can be copied by value;
/// the private key cannot), the same HMAC of a fixed probe under the OPRF seed, and a probe
/// sealed under the record key at start-up that unseals. A token that fails is refused, and the
/// daemon goes on refusing as unavailable until the right token is back.
/// </remarks>
internal sealed class PinnedTokenIdentity
{
    private static readonly IMechanismFactory Mechanisms = Pkcs11Modules.Factories.MechanismFactory;

    /// <summary>Associated data of the sealed probe: no record, ticket or key is sealed under it.</summary>
    private static readonly byte[] ProbeAssociatedData = "HsmVault token identity probe"u8.ToArray();

    /// <summary>
    /// Input of the OPRF-seed probe. Every per-user OPRF derivation ends in <c>"OprfKey" || 0x01</c>
    /// (RFC 9807's Expand), and this does not, so its HMAC is no user's OPRF key material.
    /// </summary>
    private static readonly byte[] OprfSeedProbe = "HsmVault token identity probe: OPRF seed"u8.ToArray();

    private readonly TokenDescription _token;
    private readonly FleetKeyHandles _keys;
    private readonly byte[] _oprfSeedProbeDigest;
    private readonly byte[] _sealedProbe;
    private readonly byte[] _probe;

    private PinnedTokenIdentity(TokenDescription token, FleetKeyHandles keys, byte[] oprfSeedProbeDigest, byte[] sealedProbe, byte[] probe)
    {
        _token = token;
        _keys = keys;
        _oprfSeedProbeDigest = oprfSeedProbeDigest;
        _sealedProbe = sealedProbe;
        _probe = probe;
    }

    /// <summary>The serial the token had when first opened; a reconnect looks for this serial.</summary>
    public string SerialNumber => _token.SerialNumber;

    /// <summary>Takes the token's fingerprints through <paramref name="connection"/> (two token operations).</summary>
    public static PinnedTokenIdentity Capture(TokenConnection connection, NativeCalls native) => connection.Use(session =>
    {
        var probe = RandomNumberGenerator.GetBytes(16);
        var iv = RandomNumberGenerator.GetBytes(Pkcs11Constants.GcmIvLength);
        var sealedProbe = native.GcmEncrypt(session, connection.Keys.RecordKey, iv, ProbeAssociatedData, Pkcs11Constants.GcmTagLength, probe);
        return new PinnedTokenIdentity(connection.Description, connection.Keys, OprfSeedDigest(session, connection.Keys), [.. iv, .. sealedProbe], probe);
    });

    /// <summary>Throws unless <paramref name="connection"/> is a login to the token first opened.</summary>
    /// <exception cref="TokenConfigurationException">Another token: the message says what differs.</exception>
    /// <exception cref="Pkcs11Exception">The token failed while proving itself (it may be lost again).</exception>
    public void Verify(TokenConnection connection, NativeCalls native)
    {
        var found = connection.Description;
        if (found.SerialNumber != _token.SerialNumber)
        {
            throw Impostor(found, $"its serial is '{found.SerialNumber}', not '{_token.SerialNumber}'");
        }

        if (!connection.Keys.SigningPublicKey.Equals(_keys.SigningPublicKey) || !connection.Keys.MemberIdentityPublicKey.Equals(_keys.MemberIdentityPublicKey))
        {
            throw Impostor(found, "its fleet signing key or member identity key is another");
        }

        var differs = connection.Use(session =>
        {
            var challenge = RandomNumberGenerator.GetBytes(32);
            if (!_keys.MemberIdentityPublicKey.Verifies(challenge, TokenSignatures.Sign(session, connection.Keys.MemberIdentityKey, _keys.MemberIdentityPublicKey.Algorithm, challenge)))
            {
                return "its member identity private key does not match the public key";
            }

            if (!_keys.SigningPublicKey.Verifies(challenge, TokenSignatures.Sign(session, connection.Keys.SigningKey, _keys.SigningPublicKey.Algorithm, challenge)))
            {
                return "its fleet signing private key does not match the public key";
            }

            if (!CryptographicOperations.FixedTimeEquals(OprfSeedDigest(session, connection.Keys), _oprfSeedProbeDigest))
            {
                return "its OPRF seed is another";
            }

            try
            {
                var iv = _sealedProbe[..Pkcs11Constants.GcmIvLength];
                var opened = native.GcmDecrypt(session, connection.Keys.RecordKey, iv, ProbeAssociatedData, Pkcs11Constants.GcmTagLength, _sealedProbe[Pkcs11Constants.GcmIvLength..]);
                return CryptographicOperations.FixedTimeEquals(opened, _probe) ? null : "its record key is another";
            }
            catch (Pkcs11Exception ex) when (ex.RV is CKR.CKR_GENERAL_ERROR or CKR.CKR_ENCRYPTED_DATA_INVALID or CKR.CKR_ENCRYPTED_DATA_LEN_RANGE)
            {
                // A failed tag check (SoftHSM2 says CKR_GENERAL_ERROR): another record key.
                return "its record key is another";
            }
        });
        if (differs is not null)
        {
            throw Impostor(found, differs);
        }
    }

    private TokenConfigurationException Impostor(TokenDescription found, string what) => new(
        $"the token found as '{found.Label}' in slot 0x{found.SlotId:x} ({found.ManufacturerId} {found.Model}) is not the token this daemon " +
        $"opened at start-up (serial '{_token.SerialNumber}', slot 0x{_token.SlotId:x}): {what}. Refusing it; the daemon answers " +
        "unavailable until the right token is back");

    /// <summary>SHA-256 of HMAC-SHA512(OPRF seed, probe): enough to compare, and no HMAC output is kept.</summary>
    private static byte[] OprfSeedDigest(ISession session, FleetKeyHandles keys)
    {
        using var mechanism = Mechanisms.Create(CKM.CKM_SHA512_HMAC);
        var mac = session.Sign(mechanism, keys.OprfSeed, OprfSeedProbe);
        try
        {
            return SHA256.HashData(mac);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(mac);
        }
    }
}
