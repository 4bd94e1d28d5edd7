namespace HsmVault.Consensus;

/// <summary>
/// Everything the node needs done, in this order (etcd-raft's Ready): persist <see cref="Snapshot"/> and
/// <see cref="Entries"/>, fsync, persist <see cref="HardState"/> (after the fsync, so that a durable commit
/// index never covers entries that a crash could still take away), write <see cref="HighWaterMark"/>, then send
/// <see cref="Messages"/>, then restore <see cref="Snapshot"/> into the application, apply
/// <see cref="CommittedEntries"/>, serve <see cref="ReadStates"/>, and call <see cref="RaftNode.Advance"/>.
/// Messages must never leave before the state they depend on is durable (Raft figure 2: "respond after
/// persisting"); that is why they come in the same batch.
/// </summary>
public sealed class Ready
{
    internal Ready(
        HardState? hardState,
        RaftSnapshot? snapshot,
        IReadOnlyList<LogEntry> entries,
        HighWaterMark? highWaterMark,
        IReadOnlyList<RaftMessage> messages,
        IReadOnlyList<LogEntry> committedEntries,
        IReadOnlyList<ReadState> readStates,
        IReadOnlyList<ulong> droppedReads)
    {
        HardState = hardState;
        Snapshot = snapshot;
        Entries = entries;
        HighWaterMark = highWaterMark;
        Messages = messages;
        CommittedEntries = committedEntries;
        ReadStates = readStates;
        DroppedReads = droppedReads;
    }

    /// <summary>Hard state to persist, or null when unchanged.</summary>
    public HardState? HardState { get; }

    /// <summary>A snapshot received from the leader: persist it (it replaces the log) and restore the application from it.</summary>
    public RaftSnapshot? Snapshot { get; }

    /// <summary>Entries to append; an entry at an index already stored replaces it and everything after it.</summary>
    public IReadOnlyList<LogEntry> Entries { get; }

    /// <summary>The rollback guard's new mark, to be written after the fsync and before any message is sent; null when unchanged.</summary>
    public HighWaterMark? HighWaterMark { get; }

    /// <summary>Messages to send once everything above is durable.</summary>
    public IReadOnlyList<RaftMessage> Messages { get; }

    /// <summary>Committed entries to apply, in order.</summary>
    public IReadOnlyList<LogEntry> CommittedEntries { get; }

    /// <summary>ReadIndex requests confirmed by a quorum.</summary>
    public IReadOnlyList<ReadState> ReadStates { get; }

    /// <summary>ReadIndex requests that will never be confirmed because this member stopped leading.</summary>
    public IReadOnlyList<ulong> DroppedReads { get; }

    /// <summary>True when the storage must be fsynced before the messages are sent.</summary>
    public bool MustSync => HardState is not null || Snapshot is not null || Entries.Count > 0;
}
