using HsmVault.Consensus.Tests.Simulation.Routing;
using Microsoft.Extensions.Logging.Abstractions;

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
    int UnknownOutcomes = 0,
    int ForwardedWrites = 0,
    int LeaderReadIndexes = 0);

/// <summary>
/// A deterministic fleet running the daemon's <see cref="ReadyPipeline"/> on every member, with faults at its
/// seams: disks (<see cref="MemoryRaftStorage"/>) that lose unsynced writes, power loss before and after the
/// fsync, during the high-water mark's token write and between persisting and applying, a seeded network that drops,
/// delays, duplicates and reorders messages and partitions members, crashes that lose unsynced writes,
/// disk rollbacks and wipes, and clients charging guesses and reading, at the leader or, through the daemon's
/// <see cref="LeaderRouter"/> over a seeded <see cref="SimulatedLeaderLink"/>, at any member. After every step the
/// <see cref="SafetyChecker"/> checks Raft's safety properties; after the faults stop, a leader must be
/// elected and a new command applied on every member within a bound (liveness).
/// Same seed, same run: all randomness comes from one seeded <see cref="Random"/>. What the clients do and
/// what they check is the <see cref="IWorkload"/>: the counter of <see cref="CounterWorkload"/>, or the vault's
/// own rule with a linearizability check (<see cref="Vault.VaultWorkload"/>).
/// </summary>
internal sealed class Simulation : IDisposable
{
    private const int TraceLines = 400;

    /// <summary>What one tick stands for on the <see cref="SimulatedClock"/> of the routers' async code.</summary>
    private static readonly TimeSpan TickLength = TimeSpan.FromMilliseconds(10);

    /// <summary>Small, so that even the simulator's snapshots travel in several chunks.</summary>
    private const int SnapshotChunkBytes = 64;

    private readonly SimulationOptions _options;
    private readonly int _seed;
    private readonly Random _random;
    private readonly SafetyChecker _checker;
    private readonly IWorkload _workload;
    private readonly SimMember[] _members;
    private readonly string[] _ids;
    private readonly PriorityQueue<RaftMessage, (long Tick, long Sequence)> _network = new();
    private readonly Queue<string>? _trace;
    private readonly Network _transport;
    private readonly string _transferDirectory = Directory.CreateTempSubdirectory("hsmvault-sim-transfers-").FullName;
    private readonly Dictionary<(string From, string To), SnapshotAssembler> _assemblers = [];
    private readonly SimulatedAsync _async;
    private readonly List<Task> _clientCalls = [];
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
    private int _forwardedWrites;
    private int _leaderReadIndexes;

    public Simulation(SimulationOptions options, int seed, bool trace = false)
    {
        _options = options;
        _seed = seed;
        _random = new Random(seed);
        _async = new SimulatedAsync(() => _now, TickLength);
        _ids = [.. Enumerable.Range(1, options.Members).Select(i => $"n{i}")];
        _workload = options.Workload == SimulationWorkload.Counter ? new CounterWorkload(this) : new Vault.VaultWorkload(this);
        _checker = new SafetyChecker(_workload.InitialChain, options.StopAtFirstViolation);
        _members = [.. _ids.Select(id => new SimMember(id, _workload.CreateStateMachine()))];
        _trace = trace ? new Queue<string>() : null;
        _transport = new Network(this);
        foreach (var member in _members)
        {
            Restart(member, allowDiskFaults: false);
        }
    }

    /// <summary>The last events, when tracing.</summary>
    public IEnumerable<string> Trace => _trace ?? Enumerable.Empty<string>();

    public SimulationOptions Options => _options;

    /// <summary>The members' ids, n1 to nN.</summary>
    public IReadOnlyList<string> Ids => _ids;

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

    /// <summary>Releases what the workload's applications hold (the vault's in-memory databases).</summary>
    public void Dispose()
    {
        (_workload as IDisposable)?.Dispose();
        foreach (var assembler in _assemblers.Values)
        {
            assembler.Dispose();
        }

        Directory.Delete(_transferDirectory, recursive: true);
    }

    public SimulationResult Run()
    {
        var outside = SynchronizationContext.Current;
        SynchronizationContext.SetSynchronizationContext(_async);
        try
        {
            return RunPhases();
        }
        finally
        {
            SynchronizationContext.SetSynchronizationContext(outside);
        }
    }

    private SimulationResult RunPhases()
    {
        for (; _now < _options.FaultTicks; _now++)
        {
            InjectFaults();
            _workload.Act(faultPhase: true);
            RunAsyncWork();
            DrainBatches();
            DeliverDue();
            TickAll();
            RunAsyncWork();
        }

        HealEverything();
        var livenessEnd = _now + _options.LivenessTicks;
        (SimMember Member, ulong Index, ulong Term)? marker = null;
        long markerAt = 0;
        for (; _now < livenessEnd; _now++)
        {
            _workload.Act(faultPhase: false);
            RunAsyncWork();
            DrainBatches();
            DeliverDue();
            TickAll();
            RunAsyncWork();
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
            _checker.LeaderCount, _crashes, _rollbacks, _wipes, _workload.Operations, _workload.UnknownOutcomes, _forwardedWrites,
            _leaderReadIndexes);
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

    /// <summary>With <see cref="SimulationOptions.BatchProposals"/>, the tick's proposals become durable together, in one Ready per member.</summary>
    private void DrainBatches()
    {
        if (_options.BatchProposals)
        {
            foreach (var member in _members)
            {
                Drain(member);
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
        member.Pipeline = null;
        if (member.Raft is { } raft)
        {
            member.Raft = null;
            SimulatedAsync.Deferring(raft.Crash);
        }

        // A transfer under way to the member dies with its process (its file stays for DeleteLeftovers).
        foreach (var link in _assemblers.Keys.Where(k => k.To == member.Id).ToList())
        {
            _assemblers[link].Dispose();
            _assemblers.Remove(link);
        }

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
            using (var data = snapshot.Data.OpenRead())
            {
                member.StateMachine.RestoreSnapshot(snapshot.Index, data);
            }

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
        var marks = new SimulatedMarkStore(member, _options, CrashNow);
        var mark = marks.Read();
        var node = new RaftNode(options, state, mark, member.StateMachine.AppliedIndex);
        var disk = new SimulatedDisk(member.Storage, _options, CrashNow, entries => _checker.CheckPersisted(node, entries));
        var application = new SimulatedApplication(member.StateMachine, _options, CrashNow);
        var raft = new SimulatedRaftMember(this, member, node, _async.Clock, new SimulatedLeaderLink(this, member.Id, _async.Clock));
        member.Node = node;
        member.Raft = raft;
        member.Pipeline = new ReadyPipeline(
            node, disk, application, _transport, marks, new MemberObserver(this, member, application, raft.Requests), _options.SnapshotInterval,
            NullLogger.Instance);
        member.Applied = node.AppliedIndex;
        Log($"start {member.Id}: {node.GetStatus()} mark {mark}");
        Drain(member);
    }

    /// <summary>
    /// Starts a client's call into async code (a router); it runs as far as it can now, then on in
    /// <see cref="RunAsyncWork"/>. Whatever it throws (a violation found on the way) fails the run there.
    /// </summary>
    public void StartClientCall(Func<Task> call) => _clientCalls.Add(call());

    /// <summary>Runs the async work due now, then fails the run if a client's call threw.</summary>
    private void RunAsyncWork()
    {
        _async.RunUntilIdle();
        if (_clientCalls.Find(c => c.IsFaulted) is { } failed)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failed.Exception!.InnerException!).Throw();
        }

        _clientCalls.RemoveAll(c => c.IsCompleted);
    }

    /// <summary>The running member <paramref name="id"/>'s side of the routers; null while it is down.</summary>
    public SimulatedRaftMember? RaftOf(string id) => _members[Array.IndexOf(_ids, id)].Raft;

    /// <summary>
    /// One message of a <see cref="SimulatedLeaderLink"/> call from <paramref name="from"/> to <paramref name="to"/>: it
    /// takes a network delay, and is lost (false) to the drop rate, to a partition between the two, or to the
    /// receiver's crash on the way.
    /// </summary>
    public async Task<bool> CarryAsync(string from, string to)
    {
        var lost = Partitioned(from, to) || (_faultsActive && _random.NextDouble() < _options.DropRate);
        await Task.Delay(TickLength * (1 + _random.Next(_options.MaxDelayTicks)), _async.Clock);
        return !lost && !Partitioned(from, to) && RaftOf(to) is not null;
    }

    /// <summary>A follower's router got the leader's answer to a forwarded write (<paramref name="write"/>) or read index.</summary>
    public void LinkAnswered(bool write)
    {
        if (write)
        {
            _forwardedWrites++;
        }
        else
        {
            _leaderReadIndexes++;
        }
    }

    private bool Partitioned(string from, string to) =>
        _partition is { } partition && partition[Array.IndexOf(_ids, from)] != partition[Array.IndexOf(_ids, to)];

    /// <summary>The seeded network, as every member's pipeline sends into it.</summary>
    private sealed class Network(Simulation simulation) : IRaftTransport
    {
        public void Send(RaftMessage message) => simulation.Send(message);
    }

    private void Send(RaftMessage message)
    {
        _messages++;
        if (message is InstallSnapshotRequest snapshot)
        {
            SendInChunks(snapshot);
            return;
        }

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

    /// <summary>
    /// As the daemon's transport does: the snapshot goes in chunks, in order on a stream of its own (one delay for them
    /// all). The network may break that stream at any chunk, and nothing after it arrives.
    /// </summary>
    private void SendInChunks(InstallSnapshotRequest request)
    {
        var at = _now + 1 + _random.Next(_options.MaxDelayTicks);
        foreach (var chunk in SnapshotChunker.Split(request.Snapshot, SnapshotChunkBytes))
        {
            if (_faultsActive && _random.NextDouble() < _options.DropRate)
            {
                return;
            }

            _network.Enqueue(new ChunkMessage(request.From, request.To, request.Term, request.ReadSequence, chunk), (at, _sequence++));
        }
    }

    /// <summary>The receiver's side, with the daemon's assembler: the whole InstallSnapshot once a transfer is complete.</summary>
    private InstallSnapshotRequest? Assemble(ChunkMessage message)
    {
        var link = (message.From, message.To);
        if (!_assemblers.TryGetValue(link, out var assembler))
        {
            assembler = new SnapshotAssembler(_transferDirectory, long.MaxValue);
            _assemblers[link] = assembler;
        }

        try
        {
            return assembler.Add(message.Chunk) is { } snapshot
                ? new InstallSnapshotRequest(message.From, message.To, message.Term, snapshot, message.ReadSequence)
                : null;
        }
        catch (InvalidDataException refused)
        {
            Log($"{message.From}->{message.To} snapshot chunk refused: {refused.Message}");
            return null;
        }
    }

    private void DeliverDue()
    {
        while (_network.TryPeek(out var message, out var when) && when.Tick <= _now)
        {
            _network.Dequeue();
            if (Partitioned(message.From, message.To))
            {
                continue;
            }

            var member = _members[Array.IndexOf(_ids, message.To)];
            if (member.Node is null)
            {
                continue;
            }

            var delivered = message is ChunkMessage chunk ? Assemble(chunk) : message;
            if (delivered is null)
            {
                continue;
            }

            Log($"{message.From}->{message.To} {Describe(delivered)}");
            member.Node.Step(delivered);
            Drain(member);

            // As RaftHost does: once processed, an installed snapshot lives in the storage; the transfer's file goes.
            if (delivered is InstallSnapshotRequest { Snapshot.Data: IDisposable transferred })
            {
                transferred.Dispose();
            }
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

    /// <summary>
    /// Runs <paramref name="member"/>'s <see cref="ReadyPipeline"/>, the daemon's own, until the core has nothing
    /// more to do; a crash at one of its seams takes the member down there.
    /// </summary>
    public void Drain(SimMember member)
    {
        if (member.Pipeline is not { } pipeline)
        {
            return;
        }

        try
        {
            SimulatedAsync.Deferring(pipeline.Process);
        }
        catch (SimulatedCrashException crash)
        {
            Log($"{member.Id}: {crash.Message}");
            Crash(member);
            return;
        }

        _checker.CheckLeader(member.Node!);
        if (member.Raft is { } raft)
        {
            SimulatedAsync.Deferring(() => raft.Requests.ReleaseApplied(member.Node!.AppliedIndex));
        }
    }

    /// <summary>After a client proposed at <paramref name="member"/>: make it durable now, or let proposals batch until the tick's end.</summary>
    public void Proposed(SimMember member)
    {
        if (!_options.BatchProposals)
        {
            Drain(member);
        }
    }

    private bool CrashNow(double rate) => _faultsActive && rate > 0 && _random.NextDouble() < rate;

    /// <summary>
    /// What the pipeline reports for one member: checked by the <see cref="SafetyChecker"/>, handed to the workload,
    /// and passed on to the member's <see cref="Internal.PendingRequests"/>, which answer its router as the host's answer it.
    /// </summary>
    private sealed class MemberObserver(Simulation simulation, SimMember member, SimulatedApplication application, IReadyObserver requests)
        : IReadyObserver
    {
        public void SnapshotRestored(RaftSnapshot snapshot)
        {
            requests.SnapshotRestored(snapshot);
            simulation._checker.CheckSnapshotRestored(member.Id, member.StateMachine.AppliedIndex, member.StateMachine.Chain);
            member.Applied = snapshot.Index;
            simulation.Log($"{member.Id} installed snapshot ({snapshot.Index},{snapshot.Term})");
        }

        public void Applied(LogEntry entry, byte[]? result)
        {
            if (entry.Index != member.Applied + 1)
            {
                simulation._checker.Violation($"{member.Id} applied {entry.Index} after {member.Applied}.");
            }

            member.Applied = entry.Index;
            ulong resultHash = 0;
            if (result is not null)
            {
                resultHash = SafetyChecker.Hash(result);
                simulation._workload.Applied(member, entry, result);
            }

            // The state's chain is known after a batch's last entry, not between its entries.
            simulation._checker.CheckApplied(member.Id, entry, resultHash, entry.Index == application.LastBatchEnd ? member.StateMachine.Chain : null);
            requests.Applied(entry, result);
        }

        public void ReadReady(ReadState read)
        {
            simulation._workload.ReadReady(member, read);
            requests.ReadReady(read);
        }

        public void ReadDropped(ulong requestId)
        {
            simulation._workload.ReadDropped(member, requestId);
            requests.ReadDropped(requestId);
        }
    }

    /// <summary>One chunk of a snapshot in the simulated network.</summary>
    private sealed record ChunkMessage(string From, string To, ulong Term, ulong ReadSequence, SnapshotChunk Chunk) : RaftMessage(From, To, Term);
}
