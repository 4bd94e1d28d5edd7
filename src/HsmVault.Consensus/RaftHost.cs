using System.Threading.Channels;
using HsmVault.Consensus.Internal;
using Microsoft.Extensions.Logging;

namespace HsmVault.Consensus;

/// <summary>
/// The I/O loop around a <see cref="RaftNode"/> for the daemon. One task owns the node; a
/// <see cref="TimeProvider"/> timer ticks it; inbound messages (<see cref="Deliver"/>), proposals and reads
/// are queued to that task. Each batch's Readies are carried out by a <see cref="ReadyPipeline"/> (persist and
/// fsync, high-water mark, send, apply to the <see cref="IReplicatedStateMachine"/>, snapshot every
/// <see cref="RaftHostOptions.SnapshotInterval"/> commands); the host answers proposers and readers from it.
/// </summary>
/// <remarks>
/// The host does not own the storage, transport or stores it is given; dispose them after <see cref="StopAsync"/>.
/// If storage or the state machine throws, the loop stops (a member must not continue on a disk it cannot
/// trust); <see cref="Completion"/> then faults and the daemon should exit.
/// </remarks>
public sealed partial class RaftHost : IRaftMember, IAsyncDisposable
{
    private readonly RaftHostOptions _options;
    private readonly IRaftStorage _storage;
    private readonly IReplicatedStateMachine _stateMachine;
    private readonly IRaftTransport _transport;
    private readonly IHighWaterMarkStore _highWaterMarks;
    private readonly TimeProvider _timeProvider;
    private readonly Random _random;
    private readonly ILogger _logger;
    private readonly Channel<Work> _inbox = Channel.CreateUnbounded<Work>(new UnboundedChannelOptions { SingleReader = true });
    private readonly PendingRequests _pending;
    private readonly List<IDisposable> _deliveredSnapshots = [];
    private readonly CancellationTokenSource _stopping = new();
    private RaftNode? _node;
    private ulong _nextReadId;
    private ITimer? _timer;
    private Task _loop = Task.CompletedTask;
    private volatile RaftStatus? _status;
    private RaftRole _lastRole;
    private string? _lastLeader;
    private bool _wasBehindMark;

    /// <summary>Creates a host; call <see cref="StartAsync"/> to recover and run it.</summary>
    /// <param name="options">Member id, members, timing, snapshot interval.</param>
    /// <param name="storage">This member's durable Raft storage (e.g. <see cref="FileRaftStorage"/>).</param>
    /// <param name="stateMachine">The replicated application state.</param>
    /// <param name="transport">Sends messages to other members.</param>
    /// <param name="highWaterMarks">The rollback guard's store (in production, in the HSM).</param>
    /// <param name="timeProvider">Clock for ticks and request timeouts.</param>
    /// <param name="random">Randomness for election timeouts.</param>
    /// <param name="logger">Logger.</param>
    public RaftHost(
        RaftHostOptions options,
        IRaftStorage storage,
        IReplicatedStateMachine stateMachine,
        IRaftTransport transport,
        IHighWaterMarkStore highWaterMarks,
        TimeProvider timeProvider,
        Random random,
        ILogger<RaftHost> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(storage);
        ArgumentNullException.ThrowIfNull(stateMachine);
        ArgumentNullException.ThrowIfNull(transport);
        ArgumentNullException.ThrowIfNull(highWaterMarks);
        ArgumentNullException.ThrowIfNull(timeProvider);
        ArgumentNullException.ThrowIfNull(random);
        ArgumentNullException.ThrowIfNull(logger);
        ArgumentException.ThrowIfNullOrEmpty(options.NodeId);
        _options = options;
        _storage = storage;
        _stateMachine = stateMachine;
        _transport = transport;
        _highWaterMarks = highWaterMarks;
        _timeProvider = timeProvider;
        _random = random;
        _logger = logger;
        _pending = new PendingRequests(() => _node?.LeaderId, () => ++_nextReadId, TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>This member's id.</summary>
    public string Id => _options.NodeId;

    /// <summary>True while this member leads (as of the last processed batch).</summary>
    public bool IsLeader => _status?.Role == RaftRole.Leader;

    /// <summary>The leader this member knows of, or null during an election.</summary>
    public string? LeaderId => _status?.LeaderId;

    /// <summary>A snapshot of the member's Raft state for health checks; null before <see cref="StartAsync"/>.</summary>
    public RaftStatus? Status => _status;

    /// <summary>Completes when the loop stops; faults if it stopped on an error.</summary>
    public Task Completion => _loop;

    /// <summary>
    /// Recovers the node from storage and the high-water mark, brings the state machine up to date (restoring
    /// the stored snapshot if it is behind it, then applying committed log entries after its applied index),
    /// and starts the loop and the tick timer.
    /// </summary>
    public Task StartAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (_node is not null)
        {
            throw new InvalidOperationException("The host is already started.");
        }

        var state = _storage.Load();
        if (state.Snapshot is { } snapshot && _stateMachine.AppliedIndex < snapshot.Index)
        {
            using var data = snapshot.Data.OpenRead();
            _stateMachine.RestoreSnapshot(snapshot.Index, data);
        }

        var mark = _highWaterMarks.Read();
        var node = new RaftNode(
            new RaftNodeOptions
            {
                Id = _options.NodeId,
                Members = [.. _options.Members],
                ElectionTicks = _options.ElectionTicks,
                HeartbeatTicks = _options.HeartbeatTicks,
                MaxEntriesPerMessage = _options.MaxEntriesPerMessage,
                Random = _random,
            },
            state,
            mark,
            _stateMachine.AppliedIndex);
        _node = node;
        var pipeline = new ReadyPipeline(
            node, _storage, _stateMachine, _transport, _highWaterMarks, _pending, _options.SnapshotInterval, _logger,
            runSnapshot: write => Task.Run(write));
        if (node.RollbackDetected && mark is not null)
        {
            Log.RollbackDetected(_logger, node.Id, mark);
        }

        _wasBehindMark = node.IsBehindHighWaterMark;
        pipeline.Process();
        PublishStatus(node);
        Log.Started(_logger, node.Id, node.Term, node.CommitIndex, pipeline.Applied, node.LastIndex, node.SnapshotIndex);

        _loop = Task.Run(() => RunAsync(node, pipeline, _stopping.Token), CancellationToken.None);
        _timer = _timeProvider.CreateTimer(
            static state => ((RaftHost)state!)._inbox.Writer.TryWrite(TickWork.Instance),
            this,
            _options.TickInterval,
            _options.TickInterval);
        return Task.CompletedTask;
    }

    /// <summary>
    /// Hands an inbound message from another member to the loop. Thread-safe; never blocks. The host owns the data of a
    /// delivered snapshot from then on (an assembled transfer's file) and releases it once the snapshot is stored or ignored.
    /// </summary>
    public void Deliver(RaftMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        _inbox.Writer.TryWrite(new MessageWork(message));
    }

    /// <summary>
    /// Replicates <paramref name="command"/> and returns the result of applying it on this member, once it is
    /// committed by a majority and applied here.
    /// </summary>
    /// <exception cref="NotLeaderException">This member does not lead, or lost leadership and the command was not applied.</exception>
    /// <exception cref="QuorumUnavailableException">No majority within <see cref="RaftHostOptions.RequestTimeout"/>; the command may still commit.</exception>
    public async Task<byte[]> ProposeAsync(byte[] command, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(command);
        var completion = _pending.NewProposal();
        Enqueue(new ProposeWork(command, completion));
        return await PendingRequests.AwaitCommitAsync(completion, _options.RequestTimeout, _timeProvider, cancellationToken);
    }

    /// <summary>
    /// A linearizable read barrier (ReadIndex, thesis §6.4): completes once this member has confirmed with a
    /// majority that it still leads and has applied everything committed before the call. Reads of the state
    /// machine made after it see every write acknowledged before the call.
    /// </summary>
    /// <returns>The read index: the commit index when the barrier was asked, which this member has now applied.</returns>
    /// <exception cref="NotLeaderException">This member does not lead.</exception>
    /// <exception cref="QuorumUnavailableException">No majority confirmed leadership in time.</exception>
    public async Task<ulong> ReadBarrierAsync(CancellationToken cancellationToken)
    {
        var completion = _pending.NewRead();
        Enqueue(new ReadWork(completion));
        return await PendingRequests.AwaitReadAsync(completion, _options.RequestTimeout, _timeProvider, cancellationToken);
    }

    /// <summary>
    /// Completes once this member has applied everything up to <paramref name="index"/> (a follower's half of a read
    /// barrier: the leader's read index, then wait until applied here).
    /// </summary>
    public Task WaitForAppliedAsync(ulong index, CancellationToken cancellationToken) => _pending.WaitForAppliedAsync(index, cancellationToken);

    /// <summary>Stops the timer and the loop; pending requests fail with <see cref="OperationCanceledException"/>.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_timer is not null)
        {
            await _timer.DisposeAsync();
        }

        await _stopping.CancelAsync();
        _inbox.Writer.TryComplete();
        try
        {
            await _loop.WaitAsync(cancellationToken);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            // The loop ended by our own cancellation.
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        try
        {
            await StopAsync(CancellationToken.None);
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            // Completion carries the loop's failure for whoever watches it; disposal itself must not throw.
        }

        _stopping.Dispose();
    }

    private void Enqueue(Work work)
    {
        if (_node is null)
        {
            throw new InvalidOperationException("The host is not started.");
        }

        ObjectDisposedException.ThrowIf(!_inbox.Writer.TryWrite(work), this);
    }

    private async Task RunAsync(RaftNode node, ReadyPipeline pipeline, CancellationToken stopping)
    {
        try
        {
            while (await _inbox.Reader.WaitToReadAsync(stopping))
            {
                // Drain everything queued, then make one batch durable: group commit.
                while (_inbox.Reader.TryRead(out var work))
                {
                    Handle(node, work);
                }

                pipeline.Process();
                ReleaseDeliveredSnapshots();
                PublishStatus(node);
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            Log.Stopped(_logger, node.Id);
        }
        catch (Exception exception)
        {
            Log.LoopFailed(_logger, node.Id, exception);
            FailPending(new QuorumUnavailableException("The consensus loop stopped; the outcome is unknown.", exception));
            throw;
        }
        finally
        {
            // The storage and the state machine are disposed after the host: nothing may still be writing a snapshot.
            await pipeline.StopSnapshottingAsync();
        }

        FailPending(new OperationCanceledException("The consensus host stopped."));
    }

    private void Handle(RaftNode node, Work work)
    {
        switch (work)
        {
            case TickWork:
                node.Tick();
                break;
            case MessageWork m:
                node.Step(m.Message);
                if (m.Message is InstallSnapshotRequest { Snapshot.Data: IDisposable data })
                {
                    _deliveredSnapshots.Add(data);
                }

                break;
            case ProposeWork p:
                _pending.Propose(node, p.Command, p.Completion);
                break;
            case ReadWork r:
                _pending.ReadIndex(node, r.Completion);
                break;
        }
    }

    /// <summary>
    /// A processed batch has copied every snapshot it installed into the storage, and the core sends that copy
    /// (<see cref="RaftNode.Compact"/>), so what the messages brought is no longer needed.
    /// </summary>
    private void ReleaseDeliveredSnapshots()
    {
        foreach (var data in _deliveredSnapshots)
        {
            data.Dispose();
        }

        _deliveredSnapshots.Clear();
    }

    private void PublishStatus(RaftNode node)
    {
        var status = node.GetStatus();
        _status = status;
        _pending.ReleaseApplied(status.AppliedIndex);
        if (status.Role != _lastRole || status.LeaderId != _lastLeader)
        {
            if (status.Role == RaftRole.Leader)
            {
                Log.BecameLeader(_logger, node.Id, status.Term);
            }
            else if (_lastRole == RaftRole.Leader)
            {
                Log.SteppedDown(_logger, node.Id, status.Term);
            }
            else if (status.LeaderId is { } leader)
            {
                Log.Following(_logger, node.Id, leader, status.Term);
            }

            _lastRole = status.Role;
            _lastLeader = status.LeaderId;
        }

        if (_wasBehindMark && !status.IsBehindHighWaterMark)
        {
            _wasBehindMark = false;
            Log.CaughtUp(_logger, node.Id);
        }
    }

    private void FailPending(Exception exception)
    {
        _pending.FailAll(exception);
        while (_inbox.Reader.TryRead(out var work))
        {
            if (work is ProposeWork p)
            {
                p.Completion.TrySetException(exception);
            }
            else if (work is ReadWork r)
            {
                r.Completion.TrySetException(exception);
            }
        }
    }

    private abstract record Work;

    private sealed record TickWork : Work
    {
        public static TickWork Instance { get; } = new();
    }

    private sealed record MessageWork(RaftMessage Message) : Work;

    private sealed record ProposeWork(byte[] Command, TaskCompletionSource<byte[]> Completion) : Work;

    private sealed record ReadWork(TaskCompletionSource<ulong> Completion) : Work;

    /// <summary>Log messages of the Raft host loop; event ids 3000-3099 (with <see cref="ReadyPipeline"/>).</summary>
    private static partial class Log
    {
        [LoggerMessage(EventId = 3000, EventName = "RaftStarted", Level = LogLevel.Information,
            Message = "Raft member {Id} started: term {Term}, commit {Commit}, applied {Applied}, last index {LastIndex}, snapshot {SnapshotIndex}")]
        public static partial void Started(ILogger logger, string id, ulong term, ulong commit, ulong applied, ulong lastIndex, ulong snapshotIndex);

        [LoggerMessage(EventId = 3001, EventName = "RaftRollbackDetected", Level = LogLevel.Warning,
            Message = "Raft member {Id}: the data directory is behind the high-water mark {Mark} (rolled back or wiped); it will not campaign or vote below the mark until it has caught up from the fleet")]
        public static partial void RollbackDetected(ILogger logger, string id, HighWaterMark mark);

        [LoggerMessage(EventId = 3002, EventName = "RaftBecameLeader", Level = LogLevel.Information, Message = "Raft member {Id} became leader of term {Term}")]
        public static partial void BecameLeader(ILogger logger, string id, ulong term);

        [LoggerMessage(EventId = 3003, EventName = "RaftFollowing", Level = LogLevel.Information, Message = "Raft member {Id} follows {LeaderId} in term {Term}")]
        public static partial void Following(ILogger logger, string id, string leaderId, ulong term);

        [LoggerMessage(EventId = 3004, EventName = "RaftSteppedDown", Level = LogLevel.Information, Message = "Raft member {Id} no longer leads (term {Term})")]
        public static partial void SteppedDown(ILogger logger, string id, ulong term);

        [LoggerMessage(EventId = 3008, EventName = "RaftLoopFailed", Level = LogLevel.Critical,
            Message = "Raft member {Id} stopped on an unrecoverable error; restart the daemon")]
        public static partial void LoopFailed(ILogger logger, string id, Exception exception);

        [LoggerMessage(EventId = 3009, EventName = "RaftStopped", Level = LogLevel.Information, Message = "Raft member {Id} stopped")]
        public static partial void Stopped(ILogger logger, string id);

        [LoggerMessage(EventId = 3010, EventName = "RaftCaughtUp", Level = LogLevel.Information, Message = "Raft member {Id} caught up past its high-water mark")]
        public static partial void CaughtUp(ILogger logger, string id);
    }
}
