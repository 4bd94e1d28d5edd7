using System.Security.Cryptography;
using HsmVault.Hsm.Internal;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;
using Net.Pkcs11Interop.HighLevelAPI.Factories;

namespace HsmVault.Hsm;

/// <summary>
/// The fleet key ceremony: copies the fleet keys generated in one member's token to another
/// member's token without the key material ever leaving a token in plaintext.
/// </summary>
/// <remarks>
/// Both tokens generate an ephemeral P-256 key pair, exchange public points, and derive the
/// same AES-256 wrapping key with CKM_ECDH1_DERIVE (CKD_NULL: SoftHSM2 has no other KDF, so the
/// key is the shared x-coordinate; it is ephemeral, session-only and used for one copy). The
/// source wraps each fleet key by RFC 5649 and the target unwraps it (each with the mechanism it
/// does RFC 5649 with, found by a known-answer test: SoftHSM2 calls it CKM_AES_KEY_WRAP_PAD, NSS
/// CKM_AES_KEY_WRAP_KWP)
/// as a private, sensitive, non-extractable token object. The source's keys must have been
/// generated extractable (<see cref="FleetKeyGenerationOptions.ExtractableForCeremony"/>); lock
/// them with <see cref="LockFleetKeys"/> once every member has its copy. SoftHSM2 2.6 cannot
/// wrap Ed25519 private keys, so on SoftHSM2 a fleet meant for a ceremony signs with ECDSA
/// P-256 (the provisioner picks it). Both tokens must be reachable from this process; a
/// ceremony between machines would exchange the ephemeral points and wrapped blobs over a
/// channel, with the same steps.
/// </remarks>
public static partial class FleetCeremony
{
    private static readonly IMechanismFactory Mechanisms = Pkcs11Modules.Factories.MechanismFactory;

    /// <summary>Copies every fleet key from the <paramref name="source"/> token to the <paramref name="target"/> token.</summary>
    /// <returns>The ephemeral public points and the labels copied, for the ceremony transcript.</returns>
    /// <exception cref="TokenConfigurationException">
    /// The source lacks fleet keys or they are not extractable, or the target already has fleet keys.
    /// </exception>
    public static FleetKeyCopyTranscript CopyFleetKeys(TokenOptions source, TokenOptions target, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(target);
        logger ??= NullLogger.Instance;
        using var from = AdminSession.Open(source);
        using var to = AdminSession.Open(target);
        if (from.Description.SerialNumber == to.Description.SerialNumber && from.Description.SlotId == to.Description.SlotId)
        {
            throw new TokenConfigurationException($"source and target are the same token '{from.TokenLabel}'");
        }

        var keys = FleetKeyHandles.Find(from.Session, from.Labels, from.TokenLabel);
        RefuseIfTargetHasFleetKeys(to);
        RequireExtractable(from, keys);

        // Each side's own mechanism for RFC 5649: the same algorithm, not necessarily the same
        // mechanism number (see KeyWrapNegotiation).
        var wrapMechanism = KeyWrapNegotiation.FindRfc5649(from, Pkcs11Modules.NativeOf(source.ModulePath));
        var unwrapMechanism = KeyWrapNegotiation.FindRfc5649(to, Pkcs11Modules.NativeOf(target.ModulePath));
        Log.CeremonyMechanisms(logger, from.TokenLabel, to.TokenLabel, wrapMechanism, unwrapMechanism);
        var native = Pkcs11Modules.NativeOf(source.ModulePath);

        var (sourcePrivate, sourcePoint) = GenerateEphemeral(from.Session);
        var (targetPrivate, targetPoint) = GenerateEphemeral(to.Session);
        var wrapOnSource = Derive(from.Session, sourcePrivate, targetPoint, wrap: true);
        var unwrapOnTarget = Derive(to.Session, targetPrivate, sourcePoint, wrap: false);

        // Wrap everything before creating anything in the target, so a key the source refuses
        // to wrap leaves the target untouched.
        var keyType = from.Session.GetULong(keys.SigningKey, CKA.CKA_KEY_TYPE);
        var wrapped = new List<byte[]>();
        var created = new List<IObjectHandle>();
        List<byte[]> wrappedHashes;
        try
        {
            wrapped.Add(Wrap(from, native, wrapMechanism, wrapOnSource, keys.OprfSeed, from.Labels.OprfSeed));
            wrapped.Add(Wrap(from, native, wrapMechanism, wrapOnSource, keys.RecordKey, from.Labels.RecordKey));
            wrapped.Add(Wrap(from, native, wrapMechanism, wrapOnSource, keys.SigningKey, from.Labels.SigningKey));

            using (var template = TokenProvisioner.OprfSeedTemplate(to.Labels.OprfSeed, extractable: false)
                .Add(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY)
                .Add(CKA.CKA_KEY_TYPE, CKK.CKK_GENERIC_SECRET))
            {
                created.Add(Unwrap(to.Session, unwrapMechanism, unwrapOnTarget, wrapped[0], template));
            }

            using (var template = TokenProvisioner.RecordKeyTemplate(to.Labels.RecordKey, extractable: false)
                .Add(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY)
                .Add(CKA.CKA_KEY_TYPE, CKK.CKK_AES))
            {
                created.Add(Unwrap(to.Session, unwrapMechanism, unwrapOnTarget, wrapped[1], template));
            }

            created.Add(UnwrapSigningKey(from, to, unwrapMechanism, unwrapOnTarget, wrapped[2], keyType));

            created.Add(CopySigningPublicKey(from, to, keyType));
        }
        catch
        {
            // A half-provisioned target would be refused by the next attempt; remove what was made.
            foreach (var handle in created)
            {
                to.Session.DestroyObject(handle);
            }

            throw;
        }
        finally
        {
            // The blobs' digests link each wrap to its unwrap in the ceremony transcript; a digest
            // of a ciphertext under a destroyed ephemeral key reveals nothing.
            wrappedHashes = wrapped.Select(blob => SHA256.HashData(blob)).ToList();
            wrapped.ForEach(blob => CryptographicOperations.ZeroMemory(blob));
        }

        var copied = new List<string> { to.Labels.OprfSeed, to.Labels.RecordKey, to.Labels.SigningKey };
        foreach (var label in copied)
        {
            Log.KeyCopied(logger, from.TokenLabel, to.TokenLabel, label);
        }

        // The ephemeral keys are session objects and would die with the sessions; destroy them
        // now so they cannot be used again even by a session that outlives this call.
        from.Session.DestroyObject(wrapOnSource);
        from.Session.DestroyObject(sourcePrivate);
        to.Session.DestroyObject(unwrapOnTarget);
        to.Session.DestroyObject(targetPrivate);

        // The target's own identity key is generated there, never copied.
        TokenProvisioner.EnsureMemberIdentityKey(to, logger);
        return new FleetKeyCopyTranscript(from.Description, to.Description, sourcePoint, targetPoint, copied)
        {
            WrapMechanism = wrapMechanism,
            UnwrapMechanism = unwrapMechanism,
            WrappedKeyDigests = wrappedHashes,
        };
    }

    /// <summary>
    /// Sets CKA_EXTRACTABLE to false on every fleet secret key in the token (PKCS#11 lets it go
    /// from true to false only). Run it on the token the keys were generated in once every member
    /// has its copy. Keys that are already not extractable are left as they are.
    /// </summary>
    /// <returns>Labels of the keys that were locked now.</returns>
    public static IReadOnlyList<string> LockFleetKeys(TokenOptions options, ILogger? logger = null)
    {
        logger ??= NullLogger.Instance;
        using var admin = AdminSession.Open(options);
        var keys = FleetKeyHandles.Find(admin.Session, admin.Labels, admin.TokenLabel);
        var locked = new List<string>();
        foreach (var (handle, label) in SecretKeys(keys, admin.Labels))
        {
            if (admin.Session.GetBools(handle, CKA.CKA_EXTRACTABLE)[CKA.CKA_EXTRACTABLE] != false)
            {
                using var update = new AttributeList().Add(CKA.CKA_EXTRACTABLE, false);
                admin.Session.SetAttributeValue(handle, update.Items);
                locked.Add(label);
                Log.KeyLocked(logger, admin.TokenLabel, label);
            }
        }

        return locked;
    }

    private static IEnumerable<(IObjectHandle Handle, string Label)> SecretKeys(FleetKeyHandles keys, FleetKeyLabels labels) =>
    [
        (keys.OprfSeed, labels.OprfSeed),
        (keys.RecordKey, labels.RecordKey),
        (keys.SigningKey, labels.SigningKey),
    ];

    private static void RefuseIfTargetHasFleetKeys(AdminSession to)
    {
        var present = new List<string>();
        foreach (var (objectClass, label) in new[]
        {
            (CKO.CKO_SECRET_KEY, to.Labels.OprfSeed),
            (CKO.CKO_SECRET_KEY, to.Labels.RecordKey),
            (CKO.CKO_PRIVATE_KEY, to.Labels.SigningKey),
            (CKO.CKO_PUBLIC_KEY, to.Labels.SigningPublicKey),
        })
        {
            if (to.Session.FindByLabel(objectClass, label).Count > 0)
            {
                present.Add($"'{label}'");
            }
        }

        if (present.Count > 0)
        {
            throw new TokenConfigurationException(
                $"target token '{to.TokenLabel}' already has fleet keys {string.Join(", ", present)}; refusing to copy over them");
        }
    }

    private static void RequireExtractable(AdminSession from, FleetKeyHandles keys)
    {
        foreach (var (handle, label) in SecretKeys(keys, from.Labels))
        {
            if (from.Session.GetBools(handle, CKA.CKA_EXTRACTABLE)[CKA.CKA_EXTRACTABLE] != true)
            {
                throw new TokenConfigurationException(
                    $"source token '{from.TokenLabel}' key '{label}' is not extractable; generate the fleet keys with " +
                    "ExtractableForCeremony to copy them, or provision every member from its own ceremony");
            }
        }
    }

    /// <summary>An ephemeral P-256 key pair as session objects; returns the private handle and the raw public point.</summary>
    private static (IObjectHandle PrivateKey, byte[] PublicPoint) GenerateEphemeral(ISession session)
    {
        using var publicTemplate = new AttributeList()
            .Add(CKA.CKA_TOKEN, false)
            .Add(CKA.CKA_PRIVATE, false)
            .Add(CKA.CKA_EC_PARAMS, Pkcs11Constants.P256Params.ToArray());
        using var privateTemplate = new AttributeList()
            .Add(CKA.CKA_TOKEN, false)
            .Add(CKA.CKA_PRIVATE, true)
            .Add(CKA.CKA_SENSITIVE, true)
            .Add(CKA.CKA_EXTRACTABLE, false)
            .Add(CKA.CKA_DERIVE, true)
            .Add(CKA.CKA_SIGN, false);
        using var mechanism = Mechanisms.Create(CKM.CKM_EC_KEY_PAIR_GEN);
        session.GenerateKeyPair(mechanism, publicTemplate.Items, privateTemplate.Items, out var publicKey, out var privateKey);
        var point = EcPoint.Unwrap(session.GetBytes(publicKey, CKA.CKA_EC_POINT), 65);
        session.DestroyObject(publicKey);
        return (privateKey, point);
    }

    /// <summary>The AES-256 wrapping key both sides derive: a session object, wrap-only or unwrap-only.</summary>
    private static IObjectHandle Derive(ISession session, IObjectHandle privateKey, byte[] peerPoint, bool wrap)
    {
        var parameters = Pkcs11Modules.Factories.MechanismParamsFactory.CreateCkEcdh1DeriveParams((ulong)CKD.CKD_NULL, null, peerPoint);
        using var mechanism = Mechanisms.Create(CKM.CKM_ECDH1_DERIVE, parameters);
        using var template = new AttributeList()
            .Add(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY)
            .Add(CKA.CKA_KEY_TYPE, CKK.CKK_AES)
            .Add(CKA.CKA_VALUE_LEN, 32UL)
            .Add(CKA.CKA_TOKEN, false)
            .Add(CKA.CKA_PRIVATE, true)
            .Add(CKA.CKA_SENSITIVE, true)
            .Add(CKA.CKA_EXTRACTABLE, false)
            .Add(CKA.CKA_WRAP, wrap)
            .Add(CKA.CKA_UNWRAP, !wrap)
            .Add(CKA.CKA_ENCRYPT, false)
            .Add(CKA.CKA_DECRYPT, false);
        return session.DeriveKey(mechanism, privateKey, template.Items);
    }

    private static byte[] Wrap(AdminSession from, NativeCalls native, ulong mechanism, IObjectHandle wrappingKey, IObjectHandle key, string label)
    {
        try
        {
            // A buffer large enough for any key the vault wraps (a PKCS#8 P-256 key is ~140
            // bytes): NSS's length query for RFC 5649 is short (see NativeCalls).
            return native.WrapKey(from.Session, mechanism, wrappingKey, key, 4096);
        }
        catch (Pkcs11Exception ex) when (ex.RV is CKR.CKR_KEY_NOT_WRAPPABLE or CKR.CKR_KEY_UNEXTRACTABLE)
        {
            throw new TokenConfigurationException(
                $"source token '{from.TokenLabel}' refuses to wrap key '{label}' ({ex.RV}); SoftHSM2 2.6 cannot wrap Ed25519 keys: " +
                "provision fleets meant for a ceremony with ExtractableForCeremony, which picks ECDSA P-256 there", ex);
        }
    }

    /// <summary>
    /// Unwraps the signing key. NSS softoken refuses a P-256 private key wrapped by SoftHSM2
    /// (CKR_TEMPLATE_INCOMPLETE: SoftHSM2's PKCS#8 leaves out the optional public key, and its
    /// RFC 5649 pads the blob to a multiple of 8 first), while the other direction works; the
    /// refusal becomes a configuration error that says what to do, and the caller removes what
    /// was created in the target.
    /// </summary>
    private static IObjectHandle UnwrapSigningKey(AdminSession from, AdminSession to, ulong mechanismType, IObjectHandle unwrappingKey, byte[] wrapped, ulong keyType)
    {
        using var template = TokenProvisioner.SigningKeyTemplate(to.Labels.SigningKey, extractable: false)
            .Add(CKA.CKA_CLASS, CKO.CKO_PRIVATE_KEY)
            .Add(CKA.CKA_KEY_TYPE, keyType);
        try
        {
            return Unwrap(to.Session, mechanismType, unwrappingKey, wrapped, template);
        }
        catch (Pkcs11Exception first) when (keyType == (ulong)CKK.CKK_EC && first.RV is CKR.CKR_TEMPLATE_INCOMPLETE or CKR.CKR_KEY_TYPE_INCONSISTENT)
        {
            // NSS softoken files a token private key under its public value, which it takes from
            // the PKCS#8 blob when the blob has it (NSS's own does) and otherwise wants in its
            // vendor attribute CKA_NSS_DB (SoftHSM2's PKCS#8 leaves the optional public key out).
            // The public point is public: give it.
            template.Add(Pkcs11Constants.CkaNssDb, EcPoint.Unwrap(SigningPublicPoint(from), 65));
        }

        try
        {
            return Unwrap(to.Session, mechanismType, unwrappingKey, wrapped, template);
        }
        catch (Pkcs11Exception ex) when (ex.RV is CKR.CKR_TEMPLATE_INCOMPLETE or CKR.CKR_WRAPPED_KEY_INVALID or CKR.CKR_TEMPLATE_INCONSISTENT or CKR.CKR_KEY_TYPE_INCONSISTENT or CKR.CKR_ATTRIBUTE_TYPE_INVALID)
        {
            throw new TokenConfigurationException(
                $"target token '{to.TokenLabel}' ({to.Description.ManufacturerId} {to.Description.Model}) refused the fleet signing key " +
                $"wrapped by token '{from.TokenLabel}' ({from.Description.ManufacturerId} {from.Description.Model}): C_UnwrapKey returned {ex.RV}. " +
                "Nothing was left in the target; generate the fleet keys in the other token and copy them from there", ex);
        }
    }

    private static IObjectHandle Unwrap(ISession session, ulong mechanismType, IObjectHandle unwrappingKey, byte[] wrapped, AttributeList template)
    {
        using var mechanism = Mechanisms.Create(mechanismType);
        return session.UnwrapKey(mechanism, unwrappingKey, wrapped, template.Items);
    }

    private static byte[] SigningPublicPoint(AdminSession from)
    {
        var publicKey = from.Session.FindSingle(CKO.CKO_PUBLIC_KEY, from.Labels.SigningPublicKey, from.TokenLabel)
            ?? throw new TokenConfigurationException($"token '{from.TokenLabel}' has no key '{from.Labels.SigningPublicKey}'");
        return from.Session.GetBytes(publicKey, CKA.CKA_EC_POINT);
    }

    /// <summary>The public half is public: copied by value (CKA_EC_PARAMS, CKA_EC_POINT).</summary>
    private static IObjectHandle CopySigningPublicKey(AdminSession from, AdminSession to, ulong keyType)
    {
        var publicKey = from.Session.FindSingle(CKO.CKO_PUBLIC_KEY, from.Labels.SigningPublicKey, from.TokenLabel)
            ?? throw new TokenConfigurationException($"token '{from.TokenLabel}' has no key '{from.Labels.SigningPublicKey}'");
        using var template = new AttributeList()
            .Add(CKA.CKA_CLASS, CKO.CKO_PUBLIC_KEY)
            .Add(CKA.CKA_KEY_TYPE, keyType)
            .Add(CKA.CKA_TOKEN, true)
            .Add(CKA.CKA_PRIVATE, false)
            .Add(CKA.CKA_LABEL, to.Labels.SigningPublicKey)
            .Add(CKA.CKA_VERIFY, true)
            .Add(CKA.CKA_ENCRYPT, false)
            .Add(CKA.CKA_WRAP, false)
            .Add(CKA.CKA_DERIVE, false)
            .Add(CKA.CKA_EC_PARAMS, from.Session.GetBytes(publicKey, CKA.CKA_EC_PARAMS))
            .Add(CKA.CKA_EC_POINT, from.Session.GetBytes(publicKey, CKA.CKA_EC_POINT));
        return to.Session.CreateObject(template.Items);
    }

    /// <summary>Log messages of the key ceremony; event ids 2020-2029.</summary>
    private static partial class Log
    {
        [LoggerMessage(EventId = 2020, EventName = "CeremonyKeyCopied", Level = LogLevel.Information,
            Message = "Copied fleet key '{KeyLabel}' from token '{SourceLabel}' to token '{TargetLabel}' under an ECDH-derived wrapping key")]
        public static partial void KeyCopied(ILogger logger, string sourceLabel, string targetLabel, string keyLabel);

        [LoggerMessage(EventId = 2021, EventName = "CeremonyKeyLocked", Level = LogLevel.Information,
            Message = "Locked fleet key '{KeyLabel}' in token '{TokenLabel}' (CKA_EXTRACTABLE false)")]
        public static partial void KeyLocked(ILogger logger, string tokenLabel, string keyLabel);

        [LoggerMessage(EventId = 2022, EventName = "CeremonyMechanisms", Level = LogLevel.Information,
            Message = "Key ceremony from token '{SourceLabel}' to token '{TargetLabel}' wraps by RFC 5649 with mechanism 0x{WrapMechanism:x} and unwraps with 0x{UnwrapMechanism:x}")]
        public static partial void CeremonyMechanisms(ILogger logger, string sourceLabel, string targetLabel, ulong wrapMechanism, ulong unwrapMechanism);
    }
}

/// <summary>What a fleet key copy did, for the ceremony transcript in deployment evidence.</summary>
/// <param name="Source">The token the keys were generated in.</param>
/// <param name="Target">The token that received them.</param>
/// <param name="SourceEphemeralPublicKey">The source's ephemeral P-256 point (65 bytes, uncompressed).</param>
/// <param name="TargetEphemeralPublicKey">The target's ephemeral P-256 point (65 bytes, uncompressed).</param>
/// <param name="CopiedKeys">Labels of the keys created in the target.</param>
public sealed record FleetKeyCopyTranscript(
    TokenDescription Source,
    TokenDescription Target,
    byte[] SourceEphemeralPublicKey,
    byte[] TargetEphemeralPublicKey,
    IReadOnlyList<string> CopiedKeys)
{
    /// <summary>The PKCS#11 mechanism the source wrapped with (its RFC 5649).</summary>
    public ulong WrapMechanism { get; init; }

    /// <summary>The PKCS#11 mechanism the target unwrapped with (its RFC 5649).</summary>
    public ulong UnwrapMechanism { get; init; }

    /// <summary>SHA-256 of each wrapped blob, in the order of <see cref="CopiedKeys"/>.</summary>
    public IReadOnlyList<byte[]> WrappedKeyDigests { get; init; } = [];
}
