namespace HsmVault.Consensus.Tests.Simulation;

/// <summary>Thrown when the simulator sees a violated Raft property.</summary>
public sealed class SafetyViolationException(string message) : Exception(message);

/// <summary>
/// Global records checked after every step: Election Safety, Log Matching, committed entries never lost or
/// changed (State Machine Safety and Leader Completeness, Raft §5.4), identical application results, and
/// linearizable reads.
/// </summary>
/// <remarks>
/// A violation normally ends the run at once. The negative controls of the vault's history check let the run go
/// on (<see cref="SimulationOptions.StopAtFirstViolation"/> false) to see whether the clients notice.
/// </remarks>
internal sealed class SafetyChecker(ulong initialChain, bool stopAtFirstViolation = true)
{
    private readonly List<string> _violations = [];
    private readonly Dictionary<ulong, string> _leaders = [];
    private readonly Dictionary<(ulong Index, ulong Term), (ulong Hash, ulong PreviousTerm)> _entries = [];
    private readonly Dictionary<ulong, (ulong Term, ulong Hash, ulong ResultHash, ulong? Chain)> _committed = [];
    private readonly int[] _acknowledgedCounts = new int[CounterStateMachine.Keys];

    public ulong MaxCommitted { get; private set; }

    public int AcknowledgedWrites { get; private set; }

    public int LinearizableReads { get; private set; }

    public int LeaderCount => _leaders.Count;

    /// <summary>Violations seen so far when they do not stop the run.</summary>
    public IReadOnlyList<string> Violations => _violations;

    /// <summary>Reports a violated property: throws, or records it when the run is to go on.</summary>
    public void Violation(string message)
    {
        if (stopAtFirstViolation)
        {
            throw new SafetyViolationException(message);
        }

        _violations.Add(message);
    }

    public int AcknowledgedCount(int key) => _acknowledgedCounts[key];

    /// <summary>Election Safety (Raft §5.2): at most one leader per term.</summary>
    public void CheckLeader(RaftNode node)
    {
        if (node.Role != RaftRole.Leader)
        {
            return;
        }

        if (_leaders.TryGetValue(node.Term, out var existing))
        {
            if (existing != node.Id)
            {
                Violation($"Two leaders in term {node.Term}: {existing} and {node.Id}.");
            }

            return;
        }

        _leaders[node.Term] = node.Id;

        // Leader Completeness (Raft §5.4.1): a new leader holds every committed entry.
        if (node.LastIndex < MaxCommitted)
        {
            Violation($"Leader {node.Id} of term {node.Term} has last index {node.LastIndex} < committed {MaxCommitted}.");
            return;
        }

        for (var i = node.SnapshotIndex + 1; i <= MaxCommitted; i++)
        {
            if (_committed.TryGetValue(i, out var c) && node.TryGetTerm(i) != c.Term)
            {
                Violation($"Leader {node.Id} of term {node.Term} lacks committed entry {i} (term {c.Term}); has term {node.TryGetTerm(i)}.");
                return;
            }
        }
    }

    /// <summary>Log Matching (Raft §5.3): same index and term means same command and same history.</summary>
    public void CheckPersisted(RaftNode node, IReadOnlyList<LogEntry> entries)
    {
        foreach (var entry in entries)
        {
            var previousTerm = entry.Index == 1 ? 0 : node.TryGetTerm(entry.Index - 1) ?? ulong.MaxValue;
            if (previousTerm == ulong.MaxValue)
            {
                Violation($"{node.Id} persisted entry {entry.Index} without its predecessor.");
            }

            var key = (entry.Index, entry.Term);
            var value = (Hash(entry), previousTerm);
            if (_entries.TryGetValue(key, out var existing))
            {
                if (existing != value)
                {
                    Violation($"Log Matching violated at ({entry.Index}, {entry.Term}) on {node.Id}: {existing} vs {value}.");
                }
            }
            else
            {
                _entries[key] = value;
            }
        }
    }

    /// <summary>
    /// State Machine Safety (Raft §5.4.3): every member applies the same entry at each index, with the same result,
    /// and reaches the same state. <paramref name="chain"/> is the state after the entry where the member knows it
    /// (at the end of an applied batch), else null; the first member to report it for an index sets it.
    /// </summary>
    public void CheckApplied(string member, LogEntry entry, ulong resultHash, ulong? chain)
    {
        var value = (entry.Term, Hash(entry), resultHash, chain);
        if (_committed.TryGetValue(entry.Index, out var existing))
        {
            if ((existing.Term, existing.Hash, existing.ResultHash) != (value.Term, value.Item2, value.resultHash)
                || (existing.Chain is { } known && chain is { } reported && known != reported))
            {
                Violation($"{member} applied {entry.Index} as {value}, but it was committed as {existing}.");
            }

            if (existing.Chain is null && chain is not null)
            {
                _committed[entry.Index] = existing with { Chain = chain };
            }

            return;
        }

        _committed[entry.Index] = value;
        MaxCommitted = Math.Max(MaxCommitted, entry.Index);
    }

    /// <summary>A restored snapshot must describe the state of the members that applied up to its last command.</summary>
    public void CheckSnapshotRestored(string member, ulong lastCommandIndex, ulong chain)
    {
        ulong expected;
        if (lastCommandIndex == 0)
        {
            expected = initialChain;
        }
        else if (_committed.TryGetValue(lastCommandIndex, out var c))
        {
            if (c.Chain is not { } known)
            {
                // Nobody ended a batch there: the snapshot is the first word on that state.
                _committed[lastCommandIndex] = c with { Chain = chain };
                return;
            }

            expected = known;
        }
        else
        {
            Violation($"{member} restored a snapshot at {lastCommandIndex}, which nobody applied.");
            return;
        }

        if (expected != chain)
        {
            Violation($"{member} restored a snapshot at {lastCommandIndex} whose state differs from the committed history.");
        }
    }

    /// <summary>A client got a result: the write is acknowledged and must never be lost.</summary>
    public void Acknowledge(int key, byte[] result)
    {
        AcknowledgedWrites++;
        _acknowledgedCounts[key] = Math.Max(_acknowledgedCounts[key], result[1]);
    }

    /// <summary>A linearizable read must see every write acknowledged before it started.</summary>
    public void CheckRead(string member, int key, int value, int acknowledgedBeforeRead)
    {
        LinearizableReads++;
        if (value < acknowledgedBeforeRead)
        {
            Violation(
                $"Stale read on {member}: key {key} = {value}, but {acknowledgedBeforeRead} charges were acknowledged before the read.");
        }
    }

    public static ulong Hash(LogEntry entry) =>
        CounterStateMachine.Mix(CounterStateMachine.Mix(ISimulatedStateMachine.InitialChain, (ulong)entry.Kind), entry.Data.Span);

    public static ulong Hash(byte[] result) => CounterStateMachine.Mix(ISimulatedStateMachine.InitialChain, result);
}
