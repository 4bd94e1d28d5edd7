namespace HsmVault.Consensus.Internal;

/// <summary>
/// The in-memory log of one member: a snapshot position (index, term) followed by the entries after it.
/// Pure data structure; persistence is tracked by <see cref="RaftNode"/>.
/// </summary>
internal sealed class RaftLog
{
    private readonly List<LogEntry> _entries = [];

    public RaftLog(ulong snapshotIndex, ulong snapshotTerm)
    {
        SnapshotIndex = snapshotIndex;
        SnapshotTerm = snapshotTerm;
    }

    /// <summary>Index of the last entry covered by the snapshot (0 when there is none).</summary>
    public ulong SnapshotIndex { get; private set; }

    /// <summary>Term of the entry at <see cref="SnapshotIndex"/>.</summary>
    public ulong SnapshotTerm { get; private set; }

    public ulong LastIndex => SnapshotIndex + (ulong)_entries.Count;

    public ulong LastTerm => _entries.Count == 0 ? SnapshotTerm : _entries[^1].Term;

    /// <summary>The term of the entry at <paramref name="index"/>, when the log still knows it.</summary>
    public bool TryGetTerm(ulong index, out ulong term)
    {
        if (index == SnapshotIndex)
        {
            term = SnapshotTerm;
            return true;
        }

        if (index < SnapshotIndex || index > LastIndex)
        {
            term = 0;
            return false;
        }

        term = _entries[(int)(index - SnapshotIndex - 1)].Term;
        return true;
    }

    public ulong Term(ulong index) => TryGetTerm(index, out var term)
        ? term
        : throw new InvalidOperationException($"Log has no term for index {index} (snapshot {SnapshotIndex}, last {LastIndex}).");

    public LogEntry Entry(ulong index)
    {
        if (index <= SnapshotIndex || index > LastIndex)
        {
            throw new InvalidOperationException($"Log has no entry {index} (snapshot {SnapshotIndex}, last {LastIndex}).");
        }

        return _entries[(int)(index - SnapshotIndex - 1)];
    }

    /// <summary>Entries <paramref name="from"/>..<paramref name="to"/> inclusive (a copy).</summary>
    public IReadOnlyList<LogEntry> Slice(ulong from, ulong to)
    {
        if (from > to)
        {
            return [];
        }

        if (from <= SnapshotIndex || to > LastIndex)
        {
            throw new InvalidOperationException($"Slice {from}..{to} outside log (snapshot {SnapshotIndex}, last {LastIndex}).");
        }

        return _entries.GetRange((int)(from - SnapshotIndex - 1), (int)(to - from + 1));
    }

    public void Append(LogEntry entry)
    {
        if (entry.Index != LastIndex + 1)
        {
            throw new InvalidOperationException($"Append of entry {entry.Index} after last index {LastIndex}.");
        }

        _entries.Add(entry);
    }

    /// <summary>Removes entries <paramref name="index"/> and after.</summary>
    public void TruncateFrom(ulong index)
    {
        if (index <= SnapshotIndex)
        {
            throw new InvalidOperationException($"Truncation at {index} would cut into the snapshot at {SnapshotIndex}.");
        }

        if (index <= LastIndex)
        {
            _entries.RemoveRange((int)(index - SnapshotIndex - 1), (int)(LastIndex - index + 1));
        }
    }

    /// <summary>Drops entries up to <paramref name="index"/>, which a snapshot now covers.</summary>
    public void CompactTo(ulong index, ulong term)
    {
        if (index <= SnapshotIndex)
        {
            return;
        }

        var drop = (int)Math.Min(index - SnapshotIndex, (ulong)_entries.Count);
        _entries.RemoveRange(0, drop);
        SnapshotIndex = index;
        SnapshotTerm = term;
        if (_entries.Count > 0 && _entries[0].Index != index + 1)
        {
            _entries.Clear();
        }
    }

    /// <summary>Replaces the whole log by a snapshot position (a snapshot from the leader that our log does not contain).</summary>
    public void Reset(ulong snapshotIndex, ulong snapshotTerm)
    {
        _entries.Clear();
        SnapshotIndex = snapshotIndex;
        SnapshotTerm = snapshotTerm;
    }

    /// <summary>The last index whose entry has <paramref name="term"/>, or 0 when the log holds none.</summary>
    public ulong LastIndexOfTerm(ulong term)
    {
        for (var i = _entries.Count - 1; i >= 0; i--)
        {
            var t = _entries[i].Term;
            if (t == term)
            {
                return _entries[i].Index;
            }

            if (t < term)
            {
                return 0;
            }
        }

        return SnapshotTerm == term && SnapshotIndex > 0 ? SnapshotIndex : 0;
    }

    /// <summary>
    /// The first index of the run of entries that share the term at <paramref name="index"/>,
    /// not going below <paramref name="floor"/>.
    /// </summary>
    public ulong FirstIndexOfTermRun(ulong index, ulong floor)
    {
        var term = Term(index);
        var first = index;
        while (first - 1 > Math.Max(floor, SnapshotIndex) && Term(first - 1) == term)
        {
            first--;
        }

        return first;
    }
}
