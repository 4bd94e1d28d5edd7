namespace HsmVault.Consensus;

/// <summary>Configuration of one <see cref="RaftNode"/>.</summary>
public sealed class RaftNodeOptions
{
    /// <summary>This member's id; must be one of <see cref="Members"/>.</summary>
    public required string Id { get; init; }

    /// <summary>All members of the fleet (1, 3 or 5), this one included. Fixed from configuration.</summary>
    public required IReadOnlyList<string> Members { get; init; }

    /// <summary>
    /// Ticks without hearing from a leader before a follower starts a (pre-)election; the actual timeout
    /// is randomized in [ElectionTicks, 2 × ElectionTicks) (Raft §5.2). Also the check-quorum interval.
    /// </summary>
    public int ElectionTicks { get; init; } = 10;

    /// <summary>Ticks between leader heartbeats; must be well below <see cref="ElectionTicks"/>.</summary>
    public int HeartbeatTicks { get; init; } = 1;

    /// <summary>Most entries in one AppendEntries message.</summary>
    public int MaxEntriesPerMessage { get; init; } = 64;

    /// <summary>Source of the randomized election timeouts; seed it to make a run replayable.</summary>
    public required Random Random { get; init; }
}

/// <summary>What a member recovered from its durable storage.</summary>
/// <param name="HardState">Term, vote and commit hint.</param>
/// <param name="Snapshot">The latest snapshot, or null.</param>
/// <param name="Entries">The log entries after the snapshot, in order.</param>
public sealed record RaftPersistentState(HardState HardState, RaftSnapshot? Snapshot, IReadOnlyList<LogEntry> Entries)
{
    /// <summary>The state of a member that has never run.</summary>
    public static RaftPersistentState Empty { get; } = new(default, null, []);
}

/// <summary>A proposal accepted by the leader: the command will be at <paramref name="Index"/> if it commits with <paramref name="Term"/>.</summary>
public readonly record struct ProposalTicket(ulong Index, ulong Term);

/// <summary>A point-in-time view of a node, for health checks and tests.</summary>
/// <param name="Id">Member id.</param>
/// <param name="Role">Current role.</param>
/// <param name="Term">Current term.</param>
/// <param name="LeaderId">The leader known for <paramref name="Term"/>, or null.</param>
/// <param name="CommitIndex">Highest index known committed.</param>
/// <param name="AppliedIndex">Highest index handed out for application.</param>
/// <param name="LastLogIndex">Index of the last log entry.</param>
/// <param name="SnapshotIndex">Index covered by the latest snapshot.</param>
/// <param name="IsBehindHighWaterMark">The disk went back in time; this member neither campaigns nor grants votes below the mark.</param>
public sealed record RaftStatus(
    string Id,
    RaftRole Role,
    ulong Term,
    string? LeaderId,
    ulong CommitIndex,
    ulong AppliedIndex,
    ulong LastLogIndex,
    ulong SnapshotIndex,
    bool IsBehindHighWaterMark);
