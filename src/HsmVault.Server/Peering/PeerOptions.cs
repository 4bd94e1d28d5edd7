using HsmVault.Consensus;
using HsmVault.Vault;
using Microsoft.Extensions.Options;

namespace HsmVault.Server.Peering;

/// <summary>One member of the fleet, as every member's configuration lists it.</summary>
public sealed class MemberOptions
{
    /// <summary>The member's id; its peer certificate's common name.</summary>
    public string Id { get; set; } = "";

    /// <summary>Its peer endpoint, e.g. <c>https://10.0.0.2:7201</c>.</summary>
    public string PeerAddress { get; set; } = "";
}

/// <summary>
/// The fleet's membership and how members reach each other, bound from <c>HsmVault:Peer</c>.
/// Membership is fixed by configuration: every member lists the same members.
/// </summary>
public sealed class PeerOptions
{
    /// <summary>Configuration section these options bind from.</summary>
    public const string SectionName = "HsmVault:Peer";

    /// <summary>Every member, this one included. Empty: a fleet of one.</summary>
    public List<MemberOptions> Members { get; set; } = [];

    /// <summary>PEM certificate of this member, issued by the fleet's peer CA, common name = member id, organization = fleet id.</summary>
    public string? CertificateFile { get; set; }

    /// <summary>PEM private key of that certificate. Readable by the daemon only.</summary>
    public string? KeyFile { get; set; }

    /// <summary>PEM certificate of the fleet's peer CA: the only issuer trusted for peer connections.</summary>
    public string? CaFile { get; set; }

    /// <summary>Length of one Raft tick.</summary>
    public TimeSpan TickInterval { get; set; } = RaftHostOptions.DefaultTickInterval;

    /// <summary>Ticks without a leader before a member campaigns (randomised up to twice this).</summary>
    public int ElectionTicks { get; set; } = RaftHostOptions.DefaultElectionTicks;

    /// <summary>
    /// Applied entries between snapshots, after which the log prefix is dropped; a snapshot also waits until the log
    /// since the last one holds a quarter of its size, so that a large state is not rewritten for a little log.
    /// </summary>
    public int SnapshotEveryEntries { get; set; } = RaftHostOptions.DefaultSnapshotInterval;

    /// <summary>How long a write or read barrier may wait for a majority before it is refused with Unavailable.</summary>
    public TimeSpan CommitTimeout { get; set; } = RaftHostOptions.DefaultRequestTimeout;

    /// <summary>The member ids in configuration order (just this member for a fleet of one).</summary>
    public IReadOnlyList<string> MemberIds(string self) => Members.Count == 0 ? [self] : Members.Select(m => m.Id).ToList();
}

/// <summary>
/// Refuses a fleet configuration that cannot work, at start-up, with a message that says
/// what to change: duplicate ids or addresses, this member missing or listed twice, an even
/// member count, missing peer certificates.
/// </summary>
internal sealed class PeerOptionsValidation(IOptions<VaultOptions> vault) : IValidateOptions<PeerOptions>
{
    public ValidateOptionsResult Validate(string? name, PeerOptions options)
    {
        var self = vault.Value.MemberId;
        var failures = new List<string>();
        if (options.Members.Count == 0)
        {
            return ValidateOptionsResult.Success;
        }

        foreach (var duplicate in options.Members.GroupBy(m => m.Id, StringComparer.Ordinal).Where(g => g.Count() > 1))
        {
            failures.Add(duplicate.Key == self
                ? $"this member ('{self}') is listed {duplicate.Count()} times in {PeerOptions.SectionName}:Members; list each member once"
                : $"member id '{duplicate.Key}' is listed {duplicate.Count()} times in {PeerOptions.SectionName}:Members; member ids must be unique");
        }

        foreach (var duplicate in options.Members.GroupBy(m => m.PeerAddress, StringComparer.OrdinalIgnoreCase).Where(g => g.Count() > 1))
        {
            failures.Add($"peer address '{duplicate.Key}' is given to {string.Join(", ", duplicate.Select(m => $"'{m.Id}'"))}; each member needs its own");
        }

        foreach (var member in options.Members)
        {
            if (string.IsNullOrWhiteSpace(member.Id))
            {
                failures.Add($"a member in {PeerOptions.SectionName}:Members has no Id");
            }

            if (!Uri.TryCreate(member.PeerAddress, UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttps)
            {
                failures.Add($"member '{member.Id}' has PeerAddress '{member.PeerAddress}'; it must be an https:// URL (peers use mutual TLS)");
            }
        }

        if (!options.Members.Any(m => m.Id == self))
        {
            failures.Add($"this member's id '{self}' (HsmVault:MemberId) is not in {PeerOptions.SectionName}:Members ({string.Join(", ", options.Members.Select(m => m.Id))})");
        }

        if (options.Members.Count % 2 == 0)
        {
            failures.Add($"{options.Members.Count} members tolerate no more failures than {options.Members.Count - 1} do; configure an odd number (3 or 5)");
        }

        if (options.Members.Count > 1)
        {
            foreach (var (value, key) in new[] { (options.CertificateFile, "CertificateFile"), (options.KeyFile, "KeyFile"), (options.CaFile, "CaFile") })
            {
                if (string.IsNullOrEmpty(value))
                {
                    failures.Add($"{PeerOptions.SectionName}:{key} is required for a fleet of more than one member (peers use mutual TLS)");
                }
                else if (!File.Exists(value))
                {
                    failures.Add($"{PeerOptions.SectionName}:{key} '{value}' does not exist");
                }
            }
        }

        if (options.TickInterval <= TimeSpan.Zero || options.ElectionTicks < 3 || options.SnapshotEveryEntries < 1 || options.CommitTimeout <= TimeSpan.Zero)
        {
            failures.Add($"{PeerOptions.SectionName}: TickInterval and CommitTimeout must be positive, ElectionTicks at least 3, SnapshotEveryEntries at least 1");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
