namespace HsmVault.Consensus;

/// <summary>Configuration of a <see cref="RaftHost"/>.</summary>
public sealed class RaftHostOptions
{
    /// <summary>The default length of one tick: an election timeout of 10 ticks is then 0.5 to 1 s.</summary>
    public static readonly TimeSpan DefaultTickInterval = TimeSpan.FromMilliseconds(50);

    /// <summary>The default election timeout in ticks.</summary>
    public const int DefaultElectionTicks = 10;

    /// <summary>The default number of applied commands between snapshots.</summary>
    public const int DefaultSnapshotInterval = 1000;

    /// <summary>The default wait for a majority.</summary>
    public static readonly TimeSpan DefaultRequestTimeout = TimeSpan.FromSeconds(5);

    /// <summary>This member's id.</summary>
    public string NodeId { get; set; } = "";

    /// <summary>All members' ids (1, 3 or 5), this one included; the same list on every member.</summary>
    public IList<string> Members { get; } = new List<string>();

    /// <summary>Length of one Raft tick.</summary>
    public TimeSpan TickInterval { get; set; } = DefaultTickInterval;

    /// <summary>Election timeout in ticks (randomized up to twice this).</summary>
    public int ElectionTicks { get; set; } = DefaultElectionTicks;

    /// <summary>Heartbeat interval in ticks.</summary>
    public int HeartbeatTicks { get; set; } = 1;

    /// <summary>Most entries per AppendEntries message.</summary>
    public int MaxEntriesPerMessage { get; set; } = 64;

    /// <summary>
    /// Snapshot and compact the log after this many applied entries (0 disables snapshots), once the log since the last
    /// snapshot also holds a quarter of that snapshot's size (see <see cref="ReadyPipeline"/>).
    /// </summary>
    public int SnapshotInterval { get; set; } = DefaultSnapshotInterval;

    /// <summary>How long <see cref="RaftHost.ProposeAsync"/> and <see cref="RaftHost.ReadBarrierAsync"/> wait for a majority.</summary>
    public TimeSpan RequestTimeout { get; set; } = DefaultRequestTimeout;
}
