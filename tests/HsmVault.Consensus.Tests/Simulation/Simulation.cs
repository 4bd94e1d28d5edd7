namespace HsmVault.Consensus.Tests.Simulation;

/// <summary>Counters from one simulated run.</summary>
public sealed record SimulationResult(
    int Seed,
    long Ticks,
    long Messages,
    ulong Committed,
    int AcknowledgedWrites,
    int LinearizableReads,
    int Leaders,
    int Crashes,
    int Rollbacks,
    int Wipes,
    int Operations = 0,
    int UnknownOutcomes = 0);

/// <summary>
/// A deterministic fleet: members with <see cref="MemoryRaftStorage"/>, a seeded network that drops,
/// delays, duplicates and reorders messages and partitions members, crashes that lose unsynced writes,
/// disk rollbacks and wipes, and clients charging guesses and reading. After every step the
/// <see cref="SafetyChecker"/> checks Raft's safety properties; after the faults stop, a leader must be
/// elected and a new command applied on every member within a bound (liveness).
/// Same seed, same run: all randomness comes from one seeded <see cref="Random"/>. What the clients do and
/// what they check is the <see cref="IWorkload"/>: the counter of <see cref="CounterWorkload"/>, or the vault's
/// own rule with a linearizability check (<see cref="Vault.VaultWorkload"/>).
/// </summary>
internal sealed class Simulation
{
    private const int TraceLines = 400;

    private readonly SimulationOptions _options;
    private readonly int _seed;
    private readonly Random _random;
    private readonly SafetyChecker _checker;
    private readonly IWorkload _workload;
    private readonly SimMember[] _members;
    private readonly string[] _ids;
    private readonly PriorityQueue<RaftMessage, (long Tick, long Sequence)> _network = new();
    private readonly Queue<string>? _trace;
    private long _sequence;
    private long _now;
    private long _messages;
    private int[]? _partition;
    private long _partitionEnds;
    private bool _faultsActive = true;
    private ulong _nextRequestId;
    private long _clockTick = -1;
    private long _clockEvents;
    private int _crashes;
    private int _rollbacks;
    private int _wipes;

    public Simulation(SimulationOptions options, int seed, bool trace = false)
    {
        _options = options;
        _seed = seed;
        _random = new Random(seed);
        _checker = new SafetyChecker(options.StopAtFirstViolation);
        _workload = options.Workload == SimulationWorkload.Counter ? new CounterWorkload(this) : new Vault.VaultWorkload(this);
        _ids = [.. Enumerable.Range(1, options.Members).Select(i => $"n{i}")];
        _members = [.. _ids.Select(id => new SimMember(id, _workload.CreateStateMachine()))];
        _trace = trace ? new Queue<string>() : null;
        foreach (var member in _members)
        {
            Restart(member, allowDiskFaults: false);
        }
    }

    /// <summary>The last events, when tracing.</summary>
    public IEnumerable<string> Trace => _trace ?? Enumerable.Empty<string>();

    public SimulationOptions Options => _options;

    public Random Random => _random;

    public IReadOnlyList<SimMember> Members => _members;

    public SafetyChecker Checker => _checker;

    /// <summary>The current tick.</summary>
    public long Now => _now;

    /// <summary>
    /// A strictly increasing event time for client histories: the tick, then the order of events within it. The
    /// simulator is sequential, so this order is the real-time order the linearizability checker needs.
    /// </summary>
    public long EventTime()
    {
        if (_clockTick != _now)
        {
            _clockTick = _now;
            _clockEvents = 0;
        }

        return (_now * 10_000) + Math.Min(++_clockEvents, 9_999);
    }

    public ulong NextRequestId() => ++_nextRequestId;

    public SimulationResult Run()
    {
        for (; _now < _options.FaultTicks; _now++)
        {
            InjectFaults();
            _workload.Act(faultPhase: true);
            DeliverDue();
            TickAll();
        }

        HealEverything();
        var livenessEnd = _now + _options.LivenessTicks;
        (SimMember Member, ulong Index, ulong Term)? marker = null;
        long markerAt = 0;
        for (; _now < livenessEnd; _now++)
        {
            _workload.Act(faultPhase: false);
            DeliverDue();
            TickAll();
            if (marker is { } m && m.Member.Node is { } node && node.Term == m.Term && m.Member.Applied >= m.Index)
            {
                if (_members.All(x => x.Applied >= m.Index))
                {
                    return Finish();
                }
            }
            else if (marker is null || _now - markerAt > 4 * _options.ElectionTicks)
            {
                var leader = _members.FirstOrDefault(x => x.Node?.Role == RaftRole.Leader);
                if (leader is not null && _workload.ProposeMarker(leader) is { } ticket)
                {
                    marker = (leader, ticket.Index, ticket.Term);
                    markerAt = _now;
                    Log($"marker proposed at {leader.Id} ({ticket.Index}, {ticket.Term})");
                    Drain(leader);
                }
            }
        }

        if (!_options.RequireLiveness)
        {
            return Finish();
        }

        var states = string.Join(", ", _members.Select(x => $"{x.Id}:{x.Node?.GetStatus()}"));
        throw new SafetyViolationException(
            $"Liveness: no command applied everywhere within {_options.LivenessTicks} ticks after healing. {states}");
    }

    private SimulationResult Finish()
    {
        _workload.Finish();
        if (_checker.Violations.Count > 0)
        {
            // Only when violations do not stop the run (the negative controls): the clients saw nothing wrong.
            throw new SafetyViolationException(
                $"Raft safety violated ({_checker.Violations.Count} times) without any client noticing; first: {_checker.Violations[0]}");
        }

        return new(
            _seed, _now, _messages, _checker.MaxCommitted, _checker.AcknowledgedWrites, _checker.LinearizableReads,
            _checker.LeaderCount, _crashes, _rollbacks, _wipes, _workload.Operations, _workload.UnknownOutcomes);
    }

    public void Log(string line)
    {
        if (_trace is null)
        {
            return;
        }

        _trace.Enqueue($"[{_now}] {line}");
        if (_trace.Count > TraceLines)
        {
            _trace.Dequeue();
        }
    }

    private bool DiskFaultsAllowed(SimMember member) => !_options.DiskFaultsOnFirstMemberOnly || member == _members[0];

    private void InjectFaults()
    {
        if (_partition is null)
        {
            if (_random.NextDouble() < _options.PartitionRate)
            {
                _partition = [.. _members.Select(_ => _random.Next(2))];
                _partitionEnds = _now + 20 + _random.Next(180);
                Log($"partition {string.Join(",", _partition)} until {_partitionEnds}");
            }
        }
        else if (_now >= _partitionEnds)
        {
            _partition = null;
            Log("partition healed");
        }

        if (_random.NextDouble() < _options.CrashRate)
        {
            var member = _members[_random.Next(_members.Length)];
            if (member.Node is not null)
            {
                Crash(member);
            }
        }

        foreach (var member in _members)
        {
            if (member.Node is null && member.RestartAt <= _now)
            {
                Restart(member, allowDiskFaults: true);
            }
            else if (member.Node is not null && DiskFaultsAllowed(member) && _options.RollbackRate > 0 && _random.NextDouble() < 0.01)
            {
                member.Backup = (member.Storage.CloneDurable(), member.StateMachine.Clone());
                Log($"backup of {member.Id} taken");
            }
        }
    }

    private void HealEverything()
    {
        _faultsActive = false;
        _partition = null;
        foreach (var member in _members.Where(m => m.Node is null))
        {
            Restart(member, allowDiskFaults: false);
        }

        Log("healed");
    }

    private void Crash(SimMember member)
    {
        _crashes++;
        member.Storage.Crash(_random);
        member.Node = null;
        _workload.Crashed(member);
        member.RestartAt = _now + 5 + _random.Next(95);
        Log($"crash {member.Id}, restart at {member.RestartAt}");
    }

    private void Restart(SimMember member, bool allowDiskFaults)
    {
        if (allowDiskFaults && DiskFaultsAllowed(member))
        {
            if (member.Backup is { } backup && _random.NextDouble() < _options.RollbackRate)
            {
                // The disk comes back from an old copy; the high-water mark (in the HSM) does not.
                member.Storage = backup.Storage.CloneDurable();
                member.StateMachine = backup.StateMachine.Clone();
                _rollbacks++;
                Log($"{member.Id} rolled back to a backup");
            }
            else if (_random.NextDouble() < _options.WipeRate)
            {
                member.Storage = new MemoryRaftStorage();
                member.StateMachine = _workload.CreateStateMachine();
                _wipes++;
                Log($"{member.Id} wiped");
            }
        }

        var state = member.Storage.Load();
        if (state.Snapshot is { } snapshot && member.StateMachine.AppliedIndex < snapshot.Index)
        {
            member.StateMachine.RestoreSnapshot(snapshot.Index, snapshot.Data.Span);
            _checker.CheckSnapshotRestored(member.Id, member.StateMachine.AppliedIndex, member.StateMachine.Chain);
        }

        var options = new RaftNodeOptions
        {
            Id = member.Id,
            Members = _ids,
            ElectionTicks = _options.ElectionTicks,
            HeartbeatTicks = 1,
            MaxEntriesPerMessage = 16,
            Random = new Random(_random.Next()),
        };
        var mark = _options.GuardEnabled ? member.Mark : null;
        member.Node = new RaftNode(options, state, mark, member.StateMachine.AppliedIndex);
        member.Applied = member.Node.AppliedIndex;
        Log($"start {member.Id}: {member.Node.GetStatus()} mark {mark}");
        Drain(member);
    }

    private void Send(RaftMessage message)
    {
        _messages++;
        if (_faultsActive && _random.NextDouble() < _options.DropRate)
        {
            return;
        }

        _network.Enqueue(message, (_now + 1 + _random.Next(_options.MaxDelayTicks), _sequence++));
        if (_faultsActive && _random.NextDouble() < _options.DuplicateRate)
        {
            _network.Enqueue(message, (_now + 1 + _random.Next(_options.MaxDelayTicks * 3), _sequence++));
        }
    }

    private void DeliverDue()
    {
        while (_network.TryPeek(out var message, out var when) && when.Tick <= _now)
        {
            _network.Dequeue();
            var from = Array.IndexOf(_ids, message.From);
            var to = Array.IndexOf(_ids, message.To);
            if (_partition is not null && _partition[from] != _partition[to])
            {
                continue;
            }

            var member = _members[to];
            if (member.Node is null)
            {
                continue;
            }

            Log($"{message.From}->{message.To} {Describe(message)}");
            member.Node.Step(message);
            Drain(member);
        }
    }

    private static string Describe(RaftMessage message) => message switch
    {
        AppendEntriesRequest m => $"App t{m.Term} prev=({m.PrevLogIndex},{m.PrevLogTerm}) n={m.Entries.Count} commit={m.LeaderCommit} seq={m.ReadSequence}",
        InstallSnapshotRequest m => $"Snap t{m.Term} ({m.Snapshot.Index},{m.Snapshot.Term})",
        _ => message.ToString(),
    };

    private void TickAll()
    {
        foreach (var member in _members)
        {
            if (member.Node is not null)
            {
                member.Node.Tick();
                Drain(member);
            }
        }
    }

    /// <summary>What the host does with each Ready, with a chance of crashing before the fsync.</summary>
    public void Drain(SimMember member)
    {
        while (member.Node is { } node && node.HasReady())
        {
            var ready = node.GetReady();

            // As RaftHost does: a leader's appends leave before its own fsync (thesis §10.2.1), so a crash
            // before the sync below can leave followers holding entries the leader lost.
            foreach (var message in ready.EarlyMessages)
            {
                Send(message);
            }

            if (ready.Snapshot is not null)
            {
                member.Storage.SaveSnapshot(ready.Snapshot);
            }

            member.Storage.Append(ready.Entries);
            _checker.CheckPersisted(node, ready.Entries);
            if (_faultsActive && ready.MustSync && _random.NextDouble() < _options.CrashBeforeSyncRate)
            {
                Crash(member);
                return;
            }

            if (ready.MustSync)
            {
                member.Storage.Sync();
            }

            if (ready.HardState is { } hardState)
            {
                member.Storage.SaveHardState(hardState);
            }
            if (ready.HighWaterMark is { } mark)
            {
                member.Mark = _options.VouchAheadWindow > 0 ? VouchAhead(member.Mark, mark, (ulong)_options.VouchAheadWindow) : mark;
            }

            foreach (var message in ready.Messages)
            {
                Send(message);
            }

            if (ready.Snapshot is { } snapshot)
            {
                member.StateMachine.RestoreSnapshot(snapshot.Index, snapshot.Data.Span);
                _checker.CheckSnapshotRestored(member.Id, member.StateMachine.AppliedIndex, member.StateMachine.Chain);
                member.Applied = snapshot.Index;
                Log($"{member.Id} installed snapshot ({snapshot.Index},{snapshot.Term})");
            }

            foreach (var entry in ready.CommittedEntries)
            {
                Apply(member, entry);
            }

            foreach (var readState in ready.ReadStates)
            {
                _workload.ReadConfirmed(member, readState);
            }

            foreach (var dropped in ready.DroppedReads)
            {
                _workload.ReadDropped(member, dropped);
            }

            _workload.ServeReads(member);
            node.Advance();
            _checker.CheckLeader(node);
            MaybeSnapshot(member, node);
        }
    }

    /// <summary>A store that vouches ahead: see <see cref="SimulationOptions.VouchAheadWindow"/>.</summary>
    private static HighWaterMark VouchAhead(HighWaterMark? stored, HighWaterMark mark, ulong window)
    {
        var covered = stored is not null
            && (mark.IndexTerm < stored.IndexTerm || (mark.IndexTerm == stored.IndexTerm && mark.Index <= stored.Index));
        if (covered && stored!.Term == mark.Term && stored.Vote == mark.Vote)
        {
            return stored;
        }

        return covered
            ? mark with { Index = stored!.Index, IndexTerm = stored.IndexTerm }
            : mark with { Index = (mark.Index + window - 1) / window * window };
    }

    private void Apply(SimMember member, LogEntry entry)
    {
        if (entry.Index != member.Applied + 1)
        {
            _checker.Violation($"{member.Id} applied {entry.Index} after {member.Applied}.");
        }

        member.Applied = entry.Index;
        ulong resultHash = 0;
        if (entry.Kind == LogEntryKind.Command)
        {
            var result = member.StateMachine.Apply(entry.Index, entry.Data.Span);
            resultHash = SafetyChecker.Hash(result);
            _workload.Applied(member, entry, result);
        }

        _checker.CheckApplied(member.Id, entry, resultHash, member.StateMachine.Chain);
    }

    private void MaybeSnapshot(SimMember member, RaftNode node)
    {
        if (_options.SnapshotInterval <= 0 || member.Applied - node.SnapshotIndex < (ulong)_options.SnapshotInterval)
        {
            return;
        }

        var data = member.StateMachine.CreateSnapshot(out var index);
        if (index <= node.SnapshotIndex)
        {
            return;
        }

        var snapshot = new RaftSnapshot(index, node.TryGetTerm(index)!.Value, _ids, data);
        member.Storage.SaveSnapshot(snapshot);
        node.Compact(snapshot);
    }
}
