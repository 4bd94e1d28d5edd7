using System.Security.Cryptography;
using System.Text;
using HsmVault.Hsm;
using HsmVault.Protocol.Bundles;
using HsmVault.Protocol.V1;
using HsmVault.Transparency;
using HsmVault.Transparency.Bundles;
using HsmVault.Vault;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerKeyPair = HsmVault.Crypto.Opaque.ServerKeyPair;

namespace HsmVault.Server.Bundles;

/// <summary>A validation bundle as a member serves it: the message, its decoded contents and its digest.</summary>
/// <param name="Message">The SignedBundle, as GetValidationBundle returns it.</param>
/// <param name="Bundle">Its decoded bundle.</param>
/// <param name="Digest">SHA-256 of the canonical bundle bytes.</param>
public sealed record ServedBundleState(SignedBundle Message, ValidationBundle Bundle, byte[] Digest)
{
    /// <summary>The digest as lowercase hex, as the <c>hsmvault-bundle-digest</c> header carries it.</summary>
    public string DigestHex { get; } = Convert.ToHexStringLower(Digest);
}

/// <summary>
/// The validation bundle this member serves, or none. A member serves only a bundle that
/// describes it: this fleet, this member's identity key, the token's fleet signing key and OPAQUE
/// key, the configured Argon2id parameters and OPAQUE context, an operator signature, and at least
/// one witness attestation whose fleet countersignature verifies under the bundle's fleet key.
/// (Whether the witnesses and the operator are the ones clients pin is for clients to check; a
/// member does not know their keys.) At start-up a bundle that fails is a refusal to start; later,
/// a changed file that fails, or has a lower epoch, is logged and the current bundle stays.
/// </summary>
public sealed partial class ServedBundle
{
    private readonly BundleOptions _options;
    private readonly VaultOptions _vault;
    private readonly IVaultToken _token;
    private readonly ServerKeyPair _serverKey;
    private readonly TimeProvider _time;
    private readonly ILogger<ServedBundle> _logger;
    private ServedBundleState? _current;
    private (DateTime WrittenAt, long Length)? _loadedFile;
    private ServedBundleState? _successor;
    private (DateTime WrittenAt, long Length)? _loadedSuccessorFile;

    /// <summary>Loads the configured bundle, if any.</summary>
    /// <exception cref="StartupRefusedException">The bundle file is missing, unreadable, or does not describe this member.</exception>
    public ServedBundle(
        IOptions<BundleOptions> options, IOptions<VaultOptions> vault, IVaultToken token, ServerKeyPair serverKey, TimeProvider time, ILogger<ServedBundle> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(vault);
        _options = options.Value;
        _vault = vault.Value;
        _token = token;
        _serverKey = serverKey;
        _time = time;
        _logger = logger;
        if (string.IsNullOrEmpty(_options.File))
        {
            Log.NoBundle(logger);
            return;
        }

        try
        {
            _current = Load(_options.File, out var stamp);
            _loadedFile = stamp;
        }
        catch (InvalidDataException e)
        {
            throw new StartupRefusedException($"HsmVault:Bundle:File: {e.Message}", e);
        }

        ReloadSuccessorIfChanged();
        Announce(_current, reloaded: false);
    }

    /// <summary>The bundle served now; null when the member serves none.</summary>
    public ServedBundleState? Current => Volatile.Read(ref _current);

    /// <summary>True when the served bundle is past its not-after: the fleet is retired and takes no new registrations.</summary>
    public bool IsExpired => Current is { } current && (ulong)_time.GetUtcNow().ToUnixTimeMilliseconds() > current.Bundle.NotAfterUnixMs;

    /// <summary>The successor fleet's bundle (<see cref="BundleOptions.SuccessorFile"/>), or null: where this fleet's users go.</summary>
    public ServedBundleState? Successor => Volatile.Read(ref _successor);

    /// <summary>Where this fleet's users go, for people: the successor's fleet id and member endpoints, or null.</summary>
    public string? SuccessorDescription => Successor is { } successor
        ? $"fleet '{successor.Bundle.FleetId}' (epoch {successor.Bundle.Epoch}) at {string.Join(", ", successor.Bundle.Members.Select(m => m.Endpoint))}"
        : null;

    /// <summary>
    /// Reads <see cref="BundleOptions.SuccessorFile"/> when it appeared or changed. A successor is the next
    /// fleet of this fleet's namespace: a higher epoch, another fleet id, signed by the operator and logged
    /// (the client verifies it in full before it follows it). A file that is not one is not served.
    /// </summary>
    /// <returns>Whether a new successor is served.</returns>
    public bool ReloadSuccessorIfChanged()
    {
        if (string.IsNullOrEmpty(_options.SuccessorFile))
        {
            return false;
        }

        var info = new FileInfo(_options.SuccessorFile);
        if (!info.Exists || (info.LastWriteTimeUtc, info.Length) == _loadedSuccessorFile)
        {
            return false;
        }

        _loadedSuccessorFile = (info.LastWriteTimeUtc, info.Length);
        try
        {
            var message = BundleMessages.ReadFile(info.FullName);
            var bundle = BundleCodec.Decode(message.Bundle.Span);
            var current = Current;
            var refusal = current is null ? "this member serves no bundle of its own (HsmVault:Bundle:File), so nothing vouches that it hands its users over"
                : bundle.Namespace != current.Bundle.Namespace ? $"it is of namespace '{bundle.Namespace}', not '{current.Bundle.Namespace}'"
                : bundle.Epoch <= current.Bundle.Epoch ? $"its epoch {bundle.Epoch} is not above this fleet's {current.Bundle.Epoch}"
                : bundle.FleetId == _vault.FleetId ? "it is this fleet's own bundle"
                : message.OperatorSignature is null || message.Attestations.Count == 0 ? "it is not signed by the operator and logged by a witness"
                : null;
            if (refusal is not null)
            {
                Log.SuccessorRefused(_logger, info.FullName, refusal);
                return false;
            }

            Volatile.Write(ref _successor, new ServedBundleState(message, bundle, BundleCodec.Digest(message.Bundle.Span)));
            Log.SuccessorServed(_logger, bundle.FleetId, bundle.Namespace, bundle.Epoch);
            return true;
        }
        catch (Exception e) when (e is InvalidDataException or TransparencyException or IOException or Google.Protobuf.InvalidProtocolBufferException)
        {
            Log.SuccessorRefused(_logger, info.FullName, e.Message);
            return false;
        }
    }

    /// <summary>
    /// The fleets this one takes users over from (<see cref="BundleOptions.Predecessors"/>), each by the
    /// fleet signing key its bundle names.
    /// </summary>
    /// <exception cref="StartupRefusedException">A file is missing, does not decode, or is this fleet's own bundle.</exception>
    public static Vault.Moves.PredecessorFleets LoadPredecessors(BundleOptions options, VaultOptions vault)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(vault);
        var keys = new Dictionary<string, Crypto.Signatures.SigningKeyDescription>(StringComparer.Ordinal);
        foreach (var path in options.Predecessors)
        {
            try
            {
                var bundle = BundleCodec.Decode(BundleMessages.ReadFile(path).Bundle.Span);
                if (bundle.FleetId == vault.FleetId)
                {
                    throw new StartupRefusedException($"HsmVault:Bundle:Predecessors: '{path}' is this fleet's own bundle; list the fleets whose users move here");
                }

                keys[bundle.FleetId] = bundle.FleetSigningKey;
            }
            catch (Exception e) when (e is InvalidDataException or TransparencyException or IOException or Google.Protobuf.InvalidProtocolBufferException)
            {
                throw new StartupRefusedException($"HsmVault:Bundle:Predecessors: '{path}' is not a readable SignedBundle file: {e.Message}", e);
            }
        }

        return new Vault.Moves.PredecessorFleets(keys);
    }

    /// <summary>
    /// Serves the bundle file anew if it changed since it was read and passes the checks with an
    /// epoch not lower than the current one; otherwise keeps the current bundle (and logs why).
    /// </summary>
    /// <returns>True when a new bundle is served.</returns>
    public bool ReloadIfChanged()
    {
        if (string.IsNullOrEmpty(_options.File))
        {
            return false;
        }

        var info = new FileInfo(_options.File);
        if (!info.Exists || (info.LastWriteTimeUtc, info.Length) == _loadedFile)
        {
            return false;
        }

        ServedBundleState candidate;
        try
        {
            candidate = Load(_options.File, out var stamp);
            _loadedFile = stamp;
        }
        catch (InvalidDataException e)
        {
            _loadedFile = (info.LastWriteTimeUtc, info.Length);
            Log.ReloadRefused(_logger, _options.File, e.Message);
            return false;
        }

        var current = Current;
        if (current is not null && candidate.Digest.AsSpan().SequenceEqual(current.Digest))
        {
            return false;
        }

        if (current is not null && candidate.Bundle.Epoch <= current.Bundle.Epoch)
        {
            Log.ReloadRefused(_logger, _options.File,
                $"its epoch {candidate.Bundle.Epoch} is not above the served epoch {current.Bundle.Epoch}; clients that saw the served one would refuse it");
            return false;
        }

        Volatile.Write(ref _current, candidate);
        Announce(candidate, reloaded: true);
        return true;
    }

    private ServedBundleState Load(string path, out (DateTime, long) stamp)
    {
        var info = new FileInfo(path);
        if (!info.Exists)
        {
            throw new InvalidDataException($"'{path}' does not exist (write it with `hsmvault fleet bundle --out`)");
        }

        stamp = (info.LastWriteTimeUtc, info.Length);
        var message = BundleMessages.ReadFile(path);
        return new ServedBundleState(message, Check(message, path), BundleCodec.Digest(message.Bundle.Span));
    }

    /// <summary>Decodes the bundle and checks that it describes this member; the exception names the first mismatch.</summary>
    private ValidationBundle Check(SignedBundle message, string path)
    {
        ValidationBundle bundle;
        try
        {
            bundle = BundleCodec.Decode(message.Bundle.Span);
        }
        catch (TransparencyException e)
        {
            throw new InvalidDataException($"'{path}' holds a bundle that does not decode: {e.Message}", e);
        }

        var what = $"'{path}' (bundle of '{bundle.Namespace}' epoch {bundle.Epoch}, fleet '{bundle.FleetId}')";
        void Require(bool condition, string mismatch)
        {
            if (!condition)
            {
                throw new InvalidDataException($"{what} is not this member's bundle: {mismatch}; publish one for this fleet with `hsmvault fleet bundle`");
            }
        }

        Require(bundle.FleetId == _vault.FleetId, $"this member is in fleet '{_vault.FleetId}'");
        Require(bundle.Members.Any(m => m.MemberId == _vault.MemberId), $"it does not list member '{_vault.MemberId}'");
        Require(bundle.MemberIdentityKey(_vault.MemberId) == _token.MemberIdentityKey,
            $"its identity key for '{_vault.MemberId}' is not the one in token '{_token.Description.Label}' ({_token.MemberIdentityKey.Fingerprint()})");
        Require(bundle.FleetSigningKey == _token.SigningKey,
            $"its fleet signing key {bundle.FleetSigningKey.Fingerprint()} is not the one in token '{_token.Description.Label}' ({_token.SigningKey.Fingerprint()})");
        Require(CryptographicOperations.FixedTimeEquals(bundle.OpaqueServerKey, _serverKey.PublicKey),
            $"its OPAQUE server key {Convert.ToHexStringLower(bundle.OpaqueServerKey)} is not this fleet's {Convert.ToHexStringLower(_serverKey.PublicKey)}");
        var opaque = bundle.Opaque;
        Require(opaque.Suite == BundleOpaqueConfiguration.DefaultSuite, $"its OPAQUE suite '{opaque.Suite}' is not '{BundleOpaqueConfiguration.DefaultSuite}'");
        Require((opaque.Argon2MemoryKib, opaque.Argon2Iterations, opaque.Argon2Parallelism) == ((uint)_vault.Argon2MemoryKib, (uint)_vault.Argon2Iterations, (uint)_vault.Argon2Parallelism),
            $"its Argon2id parameters (m={opaque.Argon2MemoryKib} KiB, t={opaque.Argon2Iterations}, p={opaque.Argon2Parallelism}) are not the configured ones "
            + $"(m={_vault.Argon2MemoryKib} KiB, t={_vault.Argon2Iterations}, p={_vault.Argon2Parallelism})");
        Require(opaque.Context.AsSpan().SequenceEqual(Encoding.UTF8.GetBytes(_vault.OpaqueContext)), "its OPAQUE context is not HsmVault:OpaqueContext");
        Require(message.OperatorSignature is not null, "it carries no operator signature");
        Require(message.Attestations.Count > 0, "no witness attests it (it was never logged)");
        foreach (var attestation in message.Attestations)
        {
            var signature = attestation.Entry?.WitnessSignature?.Signature.ToByteArray() ?? [];
            var countersignature = attestation.FleetCountersignature;
            Require(countersignature is not null
                    && new BundleSignature((Crypto.Signatures.SignatureAlgorithm)countersignature.Algorithm, countersignature.Signature.ToByteArray())
                        .IsBy(bundle.FleetSigningKey, FleetCountersignature.SignedMessage(signature)),
                $"the fleet countersignature of witness '{attestation.WitnessKeyName}' does not verify under its fleet signing key");
        }

        return bundle;
    }

    private void Announce(ServedBundleState served, bool reloaded)
    {
        var bundle = served.Bundle;
        Log.Serving(_logger, reloaded ? "now serves" : "serves", bundle.Namespace, bundle.Epoch, served.DigestHex, bundle.NotAfter, served.Message.Attestations.Count);
        if (IsExpired)
        {
            Log.Expired(_logger, bundle.Namespace, bundle.Epoch, bundle.NotAfter, SuccessorDescription ?? "none served (HsmVault:Bundle:SuccessorFile)");
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1010, EventName = "BundleServed", Level = LogLevel.Information,
            Message = "This member {Verb} the validation bundle of '{Namespace}' epoch {Epoch} (digest {Digest}, not after {NotAfter:O}, {Witnesses} witness attestation(s))")]
        public static partial void Serving(ILogger logger, string verb, string @namespace, ulong epoch, string digest, DateTimeOffset notAfter, int witnesses);

        [LoggerMessage(EventId = 1011, EventName = "BundleExpired", Level = LogLevel.Warning,
            Message = "The validation bundle of '{Namespace}' epoch {Epoch} expired at {NotAfter:O}: clients refuse it, and this fleet refuses registrations (successor: {Successor})")]
        public static partial void Expired(ILogger logger, string @namespace, ulong epoch, DateTimeOffset notAfter, string successor);

        [LoggerMessage(EventId = 1012, EventName = "BundleReloadRefused", Level = LogLevel.Error,
            Message = "The changed bundle file '{Path}' is not served, the current bundle stays: {Reason}")]
        public static partial void ReloadRefused(ILogger logger, string path, string reason);

        [LoggerMessage(EventId = 1013, EventName = "NoBundle", Level = LogLevel.Warning,
            Message = "HsmVault:Bundle:File is not set: this member serves no validation bundle, so verifying clients refuse it and GetFleetInfo is unauthenticated (development only)")]
        public static partial void NoBundle(ILogger logger);

        [LoggerMessage(EventId = 1016, EventName = "SuccessorRefused", Level = LogLevel.Error,
            Message = "The successor bundle file '{Path}' is not served: {Reason}")]
        public static partial void SuccessorRefused(ILogger logger, string path, string reason);

        [LoggerMessage(EventId = 1015, EventName = "SuccessorServed", Level = LogLevel.Information,
            Message = "This member names fleet '{FleetId}' ('{Namespace}' epoch {Epoch}) as its successor: clients register there and move their users there at their next recovery")]
        public static partial void SuccessorServed(ILogger logger, string fleetId, string @namespace, ulong epoch);
    }
}
