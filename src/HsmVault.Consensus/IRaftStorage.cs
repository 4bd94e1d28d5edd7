namespace HsmVault.Consensus;

/// <summary>
/// Durable storage of one member's Raft state: hard state, log and snapshot. Outside the core; the host
/// calls it with the contents of each <see cref="Ready"/>, in the order documented there.
/// </summary>
public interface IRaftStorage : IDisposable
{
    /// <summary>Recovers the durable state (after a crash: everything synced, possibly more).</summary>
    RaftPersistentState Load();

    /// <summary>
    /// Appends entries. An entry whose index is already stored replaces it and every entry after it
    /// (the conflict resolution of Raft §5.3). Durable after <see cref="Sync"/>.
    /// </summary>
    void Append(IReadOnlyList<LogEntry> entries);

    /// <summary>
    /// Records the hard state. A change of term or vote is durable when this returns; a change of the
    /// commit index alone is durable after the next <see cref="Sync"/> (losing it is harmless). Call it after
    /// <see cref="Sync"/> has made the entries up to the commit index durable.
    /// </summary>
    void SaveHardState(HardState state);

    /// <summary>
    /// Stores a snapshot durably and compacts the log: entries up to the snapshot's index are dropped, and
    /// if the log does not hold the snapshot's last entry, all entries are dropped. The data is written by
    /// <paramref name="writeData"/> into the stream it is given, so it never has to be held whole in memory.
    /// </summary>
    /// <returns>The stored snapshot, whose data reads from this storage.</returns>
    RaftSnapshot WriteSnapshot(ulong index, ulong term, IReadOnlyList<string> members, Action<Stream> writeData);

    /// <summary>Makes every earlier write durable (fsync). The host calls it before sending any message.</summary>
    void Sync();

    /// <summary>
    /// The slow half of <see cref="WriteSnapshot"/>: writes the snapshot's data durably where <see cref="InstallSnapshot"/>
    /// takes it from, touching neither the log nor the stored snapshot, so it may run on another thread while the host
    /// goes on appending. The default keeps the data in memory.
    /// </summary>
    PreparedSnapshot PrepareSnapshot(ulong index, ulong term, IReadOnlyList<string> members, Action<Stream> writeData)
    {
        ArgumentNullException.ThrowIfNull(writeData);
        using var buffer = new MemoryStream();
        writeData(buffer);
        return new BufferedPreparedSnapshot(index, term, members, buffer.ToArray());
    }

    /// <summary>The quick half, on the host's thread: stores a prepared snapshot and compacts the log, as <see cref="WriteSnapshot"/> does.</summary>
    RaftSnapshot InstallSnapshot(PreparedSnapshot prepared)
    {
        ArgumentNullException.ThrowIfNull(prepared);
        return prepared is BufferedPreparedSnapshot buffered
            ? WriteSnapshot(buffered.Index, buffered.Term, buffered.Members, destination => destination.Write(buffered.Data))
            : throw new ArgumentException("the snapshot was prepared by another storage", nameof(prepared));
    }
}

/// <summary>A snapshot <see cref="IRaftStorage.PrepareSnapshot"/> wrote and nobody installed yet; disposing it discards it.</summary>
public abstract class PreparedSnapshot(ulong index, ulong term, IReadOnlyList<string> members) : IDisposable
{
    /// <summary>The last entry the snapshot covers.</summary>
    public ulong Index { get; } = index;

    /// <summary>That entry's term.</summary>
    public ulong Term { get; } = term;

    /// <summary>The membership as of that entry.</summary>
    public IReadOnlyList<string> Members { get; } = members;

    /// <summary>Discards what was written, unless it was installed.</summary>
    public void Dispose()
    {
        Discard();
        GC.SuppressFinalize(this);
    }

    /// <summary>Removes what was written; a no-op once installed.</summary>
    protected abstract void Discard();
}

internal sealed class BufferedPreparedSnapshot(ulong index, ulong term, IReadOnlyList<string> members, byte[] data)
    : PreparedSnapshot(index, term, members)
{
    public byte[] Data { get; } = data;

    protected override void Discard()
    {
    }
}

/// <summary>Helpers over <see cref="IRaftStorage"/>.</summary>
public static class RaftStorageExtensions
{
    /// <summary>Stores <paramref name="snapshot"/>, a copy of its data, as <see cref="IRaftStorage.WriteSnapshot"/> does.</summary>
    /// <returns>The stored snapshot, whose data reads from <paramref name="storage"/>.</returns>
    public static RaftSnapshot SaveSnapshot(this IRaftStorage storage, RaftSnapshot snapshot)
    {
        ArgumentNullException.ThrowIfNull(storage);
        ArgumentNullException.ThrowIfNull(snapshot);
        return storage.WriteSnapshot(snapshot.Index, snapshot.Term, snapshot.Members, destination =>
        {
            using var source = snapshot.Data.OpenRead();
            source.CopyTo(destination);
        });
    }
}
