namespace HsmVault.Consensus;

/// <summary>
/// The application state that Raft replicates. Implemented by the application (the vault); called only from
/// the host's single consensus thread.
/// </summary>
public interface IReplicatedStateMachine
{
    /// <summary>Index of the last command applied; persisted atomically with the state it describes.</summary>
    ulong AppliedIndex { get; }

    /// <summary>
    /// Applies a committed command. Must be deterministic (same state + same command = same result and same
    /// new state on every member) and must not call the token or the network.
    /// </summary>
    /// <returns>The result handed to the proposer on this member.</returns>
    byte[] Apply(ulong index, ReadOnlySpan<byte> command);

    /// <summary>
    /// Applies a batch of consecutive committed entries, in order, as <see cref="Apply"/> would one by one; an
    /// implementation may make them durable together (one transaction per batch rather than per entry).
    /// </summary>
    /// <returns>Per entry, <see cref="Apply"/>'s result for a command, null for any other kind.</returns>
    IReadOnlyList<byte[]?> ApplyBatch(IReadOnlyList<LogEntry> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        var results = new byte[]?[entries.Count];
        for (var i = 0; i < entries.Count; i++)
        {
            results[i] = entries[i].Kind == LogEntryKind.Command ? Apply(entries[i].Index, entries[i].Data.Span) : null;
        }

        return results;
    }

    /// <summary>
    /// Serializes the state as of <see cref="AppliedIndex"/> into <paramref name="destination"/>, piece by piece (the state
    /// may be far larger than memory wants to hold at once).
    /// </summary>
    /// <returns>The index the snapshot was taken at.</returns>
    ulong WriteSnapshot(Stream destination);

    /// <summary>
    /// Pins the state as of <see cref="AppliedIndex"/> for a snapshot written later, possibly on another thread while
    /// commands go on being applied: the host writes large states' snapshots off its loop. Called on the consensus
    /// thread. The default serializes the state at once, into memory.
    /// </summary>
    IStateSnapshot CaptureSnapshot()
    {
        using var buffer = new MemoryStream();
        var index = WriteSnapshot(buffer);
        return new BufferedStateSnapshot(index, buffer.ToArray());
    }

    /// <summary>
    /// Replaces the whole state by a snapshot taken at <paramref name="index"/> on some member, read from
    /// <paramref name="source"/>. A snapshot that turns out malformed throws and leaves the state as it was.
    /// </summary>
    void RestoreSnapshot(ulong index, Stream source);
}

/// <summary>The state as of one index, pinned by <see cref="IReplicatedStateMachine.CaptureSnapshot"/>; dispose it when written.</summary>
public interface IStateSnapshot : IDisposable
{
    /// <summary>The applied index the state is pinned at.</summary>
    ulong Index { get; }

    /// <summary>Serializes the pinned state, as <see cref="IReplicatedStateMachine.WriteSnapshot"/> would have at <see cref="Index"/>; from any one thread.</summary>
    void WriteTo(Stream destination);
}

/// <summary>A snapshot serialized at once, into memory: for states small enough, or with no second view to pin.</summary>
public sealed class BufferedStateSnapshot(ulong index, byte[] data) : IStateSnapshot
{
    /// <inheritdoc />
    public ulong Index { get; } = index;

    /// <inheritdoc />
    public void WriteTo(Stream destination) => destination.Write(data);

    /// <inheritdoc />
    public void Dispose()
    {
    }
}

/// <summary>
/// Where the rollback guard keeps its <see cref="HighWaterMark"/>: somewhere a restore of the data directory
/// cannot reach (in production, an object in the HSM). Writes must be durable when they return.
/// </summary>
public interface IHighWaterMarkStore
{
    /// <summary>The stored mark, or null if none was ever written.</summary>
    HighWaterMark? Read();

    /// <summary>Durably replaces the mark.</summary>
    void Write(HighWaterMark mark);
}

/// <summary>Sends Raft messages to other members. Implemented by the gRPC transport.</summary>
public interface IRaftTransport
{
    /// <summary>
    /// Queues <paramref name="message"/> for <see cref="RaftMessage.To"/>. Fire-and-forget: must not block,
    /// may drop the message (Raft tolerates loss, duplication and reordering), and must never throw for an
    /// unreachable peer.
    /// </summary>
    void Send(RaftMessage message);
}
