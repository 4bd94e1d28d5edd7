namespace HsmVault.Consensus;

/// <summary>Configuration of a <see cref="RaftHost"/>.</summary>
public sealed class RaftHostOptions
{
    /// <summary>This member's id.</summary>
    public string NodeId { get; set; } = "";

    /// <summary>All members' ids (1, 3 or 5), this one included; the same list on every member.</summary>
    public IList<string> Members { get; } = new List<string>();

    /// <summary>Length of one Raft tick.</summary>
    public TimeSpan TickInterval { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Election timeout in ticks (randomized up to twice this).</summary>
    public int ElectionTicks { get; set; } = 10;

    /// <summary>Heartbeat interval in ticks.</summary>
    public int HeartbeatTicks { get; set; } = 1;

    /// <summary>Most entries per AppendEntries message.</summary>
    public int MaxEntriesPerMessage { get; set; } = 64;

    /// <summary>Snapshot and compact the log after this many applied commands (0 disables snapshots).</summary>
    public int SnapshotInterval { get; set; } = 1000;

    /// <summary>How long <see cref="RaftHost.ProposeAsync"/> and <see cref="RaftHost.ReadBarrierAsync"/> wait for a majority.</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(5);
}
