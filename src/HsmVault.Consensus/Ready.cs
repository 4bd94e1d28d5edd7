namespace HsmVault.Consensus;

/// <summary>
/// Everything the node needs done, in this order (etcd-raft's Ready): send <see cref="EarlyMessages"/>, persist
/// <see cref="Snapshot"/> and <see cref="Entries"/>, fsync if <see cref="MustSync"/>, persist <see cref="HardState"/> (after the fsync, so that a durable commit
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
        IReadOnlyList<RaftMessage> earlyMessages,
        IReadOnlyList<RaftMessage> messages,
        IReadOnlyList<LogEntry> committedEntries,
        IReadOnlyList<ReadState> readStates,
        IReadOnlyList<ulong> droppedReads,
        bool mustSync)
    {
        EarlyMessages = earlyMessages;
        MustSync = mustSync;
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

    /// <summary>
    /// A leader's appends and snapshots, which may leave before this Ready is durable (Raft thesis §10.2.1: the
    /// leader writes to its disk in parallel with replicating, and counts itself towards a commit quorum only
    /// for what its disk holds, in <see cref="RaftNode.Advance"/>). They vouch for nothing: they are neither a
    /// vote nor an acknowledgement, so the rollback guard's mark need not cover them. Empty when this Ready
    /// changes the term or vote, which must be durable before anyone hears of the new term.
    /// </summary>
    public IReadOnlyList<RaftMessage> EarlyMessages { get; }

    /// <summary>Messages to send once everything above is durable (votes, acknowledgements, refusals).</summary>
    public IReadOnlyList<RaftMessage> Messages { get; }

    /// <summary>Committed entries to apply, in order.</summary>
    public IReadOnlyList<LogEntry> CommittedEntries { get; }

    /// <summary>ReadIndex requests confirmed by a quorum.</summary>
    public IReadOnlyList<ReadState> ReadStates { get; }

    /// <summary>ReadIndex requests that will never be confirmed because this member stopped leading.</summary>
    public IReadOnlyList<ulong> DroppedReads { get; }

    /// <summary>
    /// True when the storage must be fsynced before <see cref="Messages"/> are sent: there are entries or a
    /// snapshot, or the term or vote changed (Raft figure 2). A change of the commit index alone needs no fsync
    /// (etcd-raft's MustSync): the commit index is a hint, rebuilt from the leader or the applied index after a
    /// crash, and every entry it covers was made durable by an earlier Ready's fsync or by this one's.
    /// </summary>
    public bool MustSync { get; }
}
