using HsmVault.Consensus;

namespace HsmVault.Testing.Raft;

/// <summary>
/// In-memory <see cref="IRaftStorage"/> for tests and the simulator (test support: the daemon only ever uses <see cref="FileRaftStorage"/>). It models a disk with a write cache:
/// appends and commit updates stay pending until <see cref="Sync"/>, and <see cref="Crash"/> keeps only a
/// random prefix of them — what a torn, unsynced tail leaves behind. Term/vote changes and snapshots are
/// durable at once, as in <see cref="FileRaftStorage"/>.
/// </summary>
public sealed class MemoryRaftStorage : IRaftStorage
{
    private readonly List<LogEntry> _entries = [];
    private readonly List<object> _pending = [];
    private HardState _hardState;
    private RaftSnapshot? _snapshot;

    /// <summary>Number of <see cref="Sync"/> calls (for tests).</summary>
    public int SyncCount { get; private set; }

    /// <inheritdoc />
    public RaftPersistentState Load()
    {
        var commit = _hardState.Commit;
        var pending = new List<object>(_pending);
        var entries = new List<LogEntry>(_entries);
        foreach (var op in pending)
        {
            ApplyOp(entries, ref commit, op);
        }

        return new RaftPersistentState(_hardState with { Commit = commit }, _snapshot, entries);
    }

    /// <inheritdoc />
    public void Append(IReadOnlyList<LogEntry> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        if (entries.Count > 0)
        {
            _pending.Add(entries.ToArray());
        }
    }

    /// <inheritdoc />
    public void SaveHardState(HardState state)
    {
        if (state.Term != _hardState.Term || state.Vote != _hardState.Vote)
        {
            _hardState = state;
        }
        else if (state.Commit != _hardState.Commit)
        {
            _pending.Add(state.Commit);
        }
    }

    /// <inheritdoc />
    public RaftSnapshot WriteSnapshot(ulong index, ulong term, IReadOnlyList<string> members, Action<Stream> writeData)
    {
        ArgumentNullException.ThrowIfNull(writeData);
        using var data = new MemoryStream();
        writeData(data);
        var snapshot = new RaftSnapshot(index, term, [.. members], data.ToArray());
        FlushPending();
        _snapshot = snapshot;
        var holdsLast = _entries.Any(e => e.Index == snapshot.Index && e.Term == snapshot.Term);
        if (holdsLast)
        {
            _entries.RemoveAll(e => e.Index <= snapshot.Index);
        }
        else
        {
            _entries.Clear();
        }

        _hardState = _hardState with { Commit = Math.Max(_hardState.Commit, snapshot.Index) };
        return snapshot;
    }

    /// <inheritdoc />
    public void Sync()
    {
        SyncCount++;
        FlushPending();
    }

    /// <summary>Simulates a power loss: keeps a random prefix of the unsynced writes and drops the rest.</summary>
    public void Crash(Random random)
    {
        ArgumentNullException.ThrowIfNull(random);
        var keep = random.Next(_pending.Count + 1);
        var commit = _hardState.Commit;
        for (var i = 0; i < keep; i++)
        {
            ApplyOp(_entries, ref commit, _pending[i]);
        }

        _hardState = _hardState with { Commit = commit };
        _pending.Clear();
    }

    /// <summary>A copy of the durable state only (what a backup of the disk taken now would hold).</summary>
    public MemoryRaftStorage CloneDurable()
    {
        var copy = new MemoryRaftStorage { _hardState = _hardState, _snapshot = _snapshot };
        copy._entries.AddRange(_entries);
        return copy;
    }

    /// <inheritdoc />
    public void Dispose()
    {
    }

    private void FlushPending()
    {
        var commit = _hardState.Commit;
        foreach (var op in _pending)
        {
            ApplyOp(_entries, ref commit, op);
        }

        _hardState = _hardState with { Commit = commit };
        _pending.Clear();
    }

    private static void ApplyOp(List<LogEntry> entries, ref ulong commit, object op)
    {
        switch (op)
        {
            case LogEntry[] append:
                var first = append[0].Index;
                var position = entries.FindIndex(e => e.Index >= first);
                if (position >= 0)
                {
                    entries.RemoveRange(position, entries.Count - position);
                }

                if (entries.Count > 0 && entries[^1].Index + 1 != first)
                {
                    throw new InvalidOperationException($"Append at {first} leaves a gap after {entries[^1].Index}.");
                }

                entries.AddRange(append);
                break;
            case ulong newCommit:
                commit = Math.Max(commit, newCommit);
                break;
        }
    }
}
