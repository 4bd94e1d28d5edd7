using HsmVault.Crypto.Signatures;
using HsmVault.Protocol.Moves;

namespace HsmVault.Vault.Moves;

/// <summary>
/// The fleets this fleet takes users over from, each by its fleet signing key: the one place that
/// decides whether a <see cref="MoveReceipt"/> may activate a pending record here. Every member holds
/// the same set (from the predecessors' validation bundles), and checks a receipt both when it serves
/// ActivateRecord and again where the command is applied.
/// </summary>
public sealed class PredecessorFleets
{
    private readonly Dictionary<string, SigningKeyDescription> _signingKeys;

    /// <summary>The predecessors, by fleet id.</summary>
    public PredecessorFleets(IReadOnlyDictionary<string, SigningKeyDescription> signingKeys)
    {
        ArgumentNullException.ThrowIfNull(signingKeys);
        _signingKeys = new Dictionary<string, SigningKeyDescription>(signingKeys, StringComparer.Ordinal);
    }

    /// <summary>A fleet that takes no users over.</summary>
    public static PredecessorFleets None { get; } = new(new Dictionary<string, SigningKeyDescription>());

    /// <summary>The predecessors' fleet ids.</summary>
    public IReadOnlyCollection<string> FleetIds => _signingKeys.Keys;

    /// <summary>Whether <paramref name="fleetId"/> is a predecessor.</summary>
    public bool Contains(string fleetId) => _signingKeys.ContainsKey(fleetId);

    /// <summary>
    /// Why <paramref name="receipt"/> may not activate <paramref name="user"/>'s record of
    /// <paramref name="version"/> on <paramref name="thisFleet"/>, or null when it may.
    /// </summary>
    public string? Refusal(byte[] receipt, SignatureAlgorithm algorithm, ReadOnlySpan<byte> signature, string thisFleet, UserIdentity user, long version)
    {
        ArgumentNullException.ThrowIfNull(receipt);
        ArgumentNullException.ThrowIfNull(user);
        MoveReceipt parsed;
        try
        {
            parsed = MoveReceipt.Decode(receipt);
        }
        catch (FormatException e)
        {
            return $"the move receipt does not parse: {e.Message}";
        }

        if (!_signingKeys.TryGetValue(parsed.FromFleet, out var key))
        {
            return _signingKeys.Count == 0
                ? $"the receipt is from fleet '{parsed.FromFleet}', and this fleet takes users over from no fleet (HsmVault:Bundle:Predecessors)"
                : $"the receipt is from fleet '{parsed.FromFleet}', which is not a predecessor of this fleet ({string.Join(", ", _signingKeys.Keys)})";
        }

        if (parsed.ToFleet != thisFleet)
        {
            return $"the receipt releases the record to fleet '{parsed.ToFleet}', not to this fleet '{thisFleet}'";
        }

        if (parsed.Tenant != user.Tenant || parsed.UserId != user.UserId)
        {
            return "the receipt is for another user";
        }

        if (parsed.TargetVersion != version)
        {
            return $"the receipt is for version {parsed.TargetVersion} of the pending record, not version {version}";
        }

        if (algorithm != key.Algorithm || !key.Verifies(receipt, signature))
        {
            return $"the receipt's signature does not verify under the signing key {key.Fingerprint()} of fleet '{parsed.FromFleet}'";
        }

        return null;
    }
}
