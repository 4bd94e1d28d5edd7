using Microsoft.Extensions.Logging;

namespace HsmVault.Consensus;

/// <summary>
/// What a <see cref="ReadyPipeline"/> tells its owner as it carries out a <see cref="Ready"/>: the results of
/// applied entries (to answer proposers) and the reads that may now be served. Called on the pipeline's thread.
/// </summary>
public interface IReadyObserver
{
    /// <summary>The application was replaced by <paramref name="snapshot"/>: entries up to its index were not applied one by one.</summary>
    void SnapshotRestored(RaftSnapshot snapshot);

    /// <summary><paramref name="entry"/> was applied; <paramref name="result"/> is the application's answer, null for a non-command entry.</summary>
    void Applied(LogEntry entry, byte[]? result);

    /// <summary>A quorum confirmed <paramref name="read"/> and everything up to its index is applied: the read may be served now.</summary>
    void ReadReady(ReadState read);

    /// <summary>The ReadIndex request <paramref name="requestId"/> will never be confirmed (this member stopped leading).</summary>
    void ReadDropped(ulong requestId);
}

/// <summary>
/// Carries out a <see cref="RaftNode"/>'s Readies, in the order that makes Raft safe (see <see cref="Ready"/>):
/// persist and fsync, write the rollback guard's high-water mark, send, restore a snapshot, apply, release reads,
/// advance, and take a snapshot every <c>snapshotInterval</c> applied entries (once the log also holds a quarter of
/// the last snapshot's size). The one implementation of that
/// order: <see cref="RaftHost"/> runs it on its loop, and the deterministic simulator and test network run it
/// between their seeded steps, injecting crashes and lost writes at its seams (the storage, the mark store, the
/// state machine, the transport) rather than copying it.
/// </summary>
/// <remarks>
/// An exception from the storage, the mark store or the state machine leaves the pipeline where it was: the caller
/// must treat the member as crashed (the daemon stops its loop; the simulator restarts the member from its disk).
/// A transport failure is logged and the message lost, which Raft tolerates.
/// <para>Snapshots: the state is pinned at the applied index on the pipeline's thread
/// (<see cref="IReplicatedStateMachine.CaptureSnapshot"/>), and its data written by
/// <see cref="IRaftStorage.PrepareSnapshot"/> through the runner given at construction; the daemon's runs it on
/// the thread pool, so a large state's snapshot never stalls the writes behind it. The pipeline installs it and
/// compacts the log at its first <see cref="Process"/> after it is written (the host's next tick at the latest),
/// unless a snapshot received from the leader has overtaken it. A failed background snapshot is logged and taken again later: the log still holds everything.
/// Without a runner (the simulator, the test network) all of it happens at once, in line.</para>
/// </remarks>
public sealed partial class ReadyPipeline
{
    /// <summary>
    /// A snapshot is taken only once the log since the last one holds at least this fraction of that snapshot's bytes
    /// (1/4). Rewriting a large state every <c>snapshotInterval</c> entries costs far more I/O than the log it lets go
    /// (with 100k users, 38 MB for every 0.25 MB of log), and its fsync holds up the log's; this bounds the snapshot
    /// writes to four bytes per byte of log, and the log kept beside a snapshot to about a quarter of it.
    /// </summary>
    private const int SnapshotBytesPerLogByte = 4;

    /// <summary>What an entry costs the log beyond its data (index, term, kind, length, checksum), roughly.</summary>
    private const int EntryOverheadBytes = 32;

    private readonly RaftNode _node;
    private readonly IRaftStorage _storage;
    private readonly IReplicatedStateMachine _stateMachine;
    private readonly IRaftTransport _transport;
    private readonly IHighWaterMarkStore _highWaterMarks;
    private readonly IReadyObserver _observer;
    private readonly int _snapshotInterval;
    private readonly ILogger _logger;
    private readonly List<ReadState> _waitingReads = [];
    private readonly Func<Func<PreparedSnapshot>, Task<PreparedSnapshot>>? _runSnapshot;
    private RaftSnapshot? _stored;
    private Task<PreparedSnapshot>? _snapshotJob;
    private long _logBytesSinceSnapshot;
    private long _logBytesInRunningSnapshot;

    /// <summary>Creates the pipeline of a node just recovered from <paramref name="storage"/> and <paramref name="stateMachine"/>.</summary>
    /// <param name="node">The core whose Readies this carries out.</param>
    /// <param name="storage">The member's durable Raft storage.</param>
    /// <param name="stateMachine">The replicated application.</param>
    /// <param name="transport">Sends messages to other members.</param>
    /// <param name="highWaterMarks">The rollback guard's store.</param>
    /// <param name="observer">Told of results and servable reads.</param>
    /// <param name="snapshotInterval">
    /// Snapshot and compact after this many applied entries (0: never), and once the log since the last snapshot holds a
    /// quarter of its size.
    /// </param>
    /// <param name="logger">Logger.</param>
    /// <param name="runSnapshot">Runs the writing of a snapshot's data, e.g. on the thread pool; null: in line, on this thread.</param>
    public ReadyPipeline(
        RaftNode node,
        IRaftStorage storage,
        IReplicatedStateMachine stateMachine,
        IRaftTransport transport,
        IHighWaterMarkStore highWaterMarks,
        IReadyObserver observer,
        int snapshotInterval,
        ILogger logger,
        Func<Func<PreparedSnapshot>, Task<PreparedSnapshot>>? runSnapshot = null)
    {
        ArgumentNullException.ThrowIfNull(node);
        ArgumentNullException.ThrowIfNull(storage);
        ArgumentNullException.ThrowIfNull(stateMachine);
        ArgumentNullException.ThrowIfNull(transport);
        ArgumentNullException.ThrowIfNull(highWaterMarks);
        ArgumentNullException.ThrowIfNull(observer);
        ArgumentNullException.ThrowIfNull(logger);
        _node = node;
        _storage = storage;
        _stateMachine = stateMachine;
        _transport = transport;
        _highWaterMarks = highWaterMarks;
        _observer = observer;
        _snapshotInterval = snapshotInterval;
        _logger = logger;
        _runSnapshot = runSnapshot;
        Applied = node.AppliedIndex;

        // The log found at the start counts too, or a member restarted often enough would never take a snapshot.
        _logBytesSinceSnapshot = node.AppliedSinceSnapshot().Sum(LogBytes);
    }

    /// <summary>Index of the last entry applied (or restored by snapshot), commands and others.</summary>
    public ulong Applied { get; private set; }

    /// <summary>Carries out every pending Ready of the node.</summary>
    public void Process()
    {
        // A snapshot written in the background is installed at the next call, a tick's at the latest.
        InstallWrittenSnapshot();
        while (_node.HasReady())
        {
            var ready = _node.GetReady();

            // A leader's appends leave first, so that followers make them durable while this member does
            // (thesis §10.2.1); everything that vouches for our state waits below until it is durable.
            SendAll(ready.EarlyMessages);
            Persist(ready);
            SendAll(ready.Messages);
            ApplyAll(ready);
            ReleaseReads(ready);
            _node.Advance();
            if (_stored is { } stored)
            {
                // The core sends this copy from now on: the one in the message may be a transfer's file, soon gone.
                _node.Compact(stored);
                _stored = null;
            }

            MaybeSnapshot();
        }
    }

    private void Persist(Ready ready)
    {
        if (ready.Snapshot is not null)
        {
            _stored = _storage.SaveSnapshot(ready.Snapshot);
        }

        _storage.Append(ready.Entries);
        if (ready.MustSync)
        {
            _storage.Sync();
        }

        // After the fsync, so that a durable commit index never covers entries a crash could still take away.
        if (ready.HardState is { } hardState)
        {
            _storage.SaveHardState(hardState);
        }

        // The rollback guard's mark goes to the token after our disk and before anyone hears from us.
        if (ready.HighWaterMark is { } mark)
        {
            _highWaterMarks.Write(mark);
        }
    }

    private void ApplyAll(Ready ready)
    {
        if (ready.Snapshot is { } snapshot)
        {
            using (var data = _stored!.Data.OpenRead())
            {
                _stateMachine.RestoreSnapshot(snapshot.Index, data);
            }

            Applied = snapshot.Index;
            _logBytesSinceSnapshot = 0;
            _observer.SnapshotRestored(snapshot);
            Log.SnapshotInstalled(_logger, _node.Id, snapshot.Index);
        }

        // One call per batch, so the state machine can make the batch durable at once (see VaultStateMachine.ApplyBatch);
        // proposers hear of their results only after the whole batch is applied.
        var results = ready.CommittedEntries.Count > 0 ? _stateMachine.ApplyBatch(ready.CommittedEntries) : [];
        for (var i = 0; i < ready.CommittedEntries.Count; i++)
        {
            Applied = ready.CommittedEntries[i].Index;
            _logBytesSinceSnapshot += LogBytes(ready.CommittedEntries[i]);
            _observer.Applied(ready.CommittedEntries[i], results[i]);
        }
    }

    private void ReleaseReads(Ready ready)
    {
        _waitingReads.AddRange(ready.ReadStates);
        foreach (var dropped in ready.DroppedReads)
        {
            _observer.ReadDropped(dropped);
        }

        // A confirmed read waits until this member has applied as far as the commit index it was confirmed at
        // (thesis §6.4, step 4).
        for (var i = 0; i < _waitingReads.Count; i++)
        {
            if (_waitingReads[i].Index <= Applied)
            {
                var read = _waitingReads[i];
                _waitingReads.RemoveAt(i--);
                _observer.ReadReady(read);
            }
        }
    }

    private void SendAll(IReadOnlyList<RaftMessage> messages)
    {
        foreach (var message in messages)
        {
            try
            {
                _transport.Send(message);
            }
            catch (Exception exception) when (exception is not OutOfMemoryException)
            {
                // Raft tolerates a lost message; a broken transport must not stop the member.
                Log.SendFailed(_logger, message.GetType().Name, message.To, exception);
            }
        }
    }

    /// <summary>
    /// Waits for a snapshot being written in the background and installs it: for the owner, when its loop has stopped,
    /// before it disposes the storage and the state machine.
    /// </summary>
    public async Task StopSnapshottingAsync()
    {
        if (_snapshotJob is not { } job)
        {
            return;
        }

        _snapshotJob = null;
        try
        {
            Install(await job);
        }
        catch (Exception exception) when (exception is not OutOfMemoryException)
        {
            Log.SnapshotFailed(_logger, _node.Id, exception);
        }
    }

    private void MaybeSnapshot()
    {
        if (_snapshotJob is not null || _snapshotInterval <= 0 || _stateMachine.AppliedIndex < _node.SnapshotIndex + (ulong)_snapshotInterval
            || _logBytesSinceSnapshot * SnapshotBytesPerLogByte < _node.SnapshotBytes)
        {
            return;
        }

        var index = _stateMachine.AppliedIndex;
        if (index <= _node.SnapshotIndex || index > _node.AppliedIndex || _node.TryGetTerm(index) is not { } term)
        {
            return;
        }

        // Pinned here, between two batches; written straight from the application into the storage's file, so the
        // state is never one array.
        var state = _stateMachine.CaptureSnapshot();
        _logBytesInRunningSnapshot = _logBytesSinceSnapshot;
        if (state.Index != index)
        {
            state.Dispose();
            throw new InvalidOperationException($"The application pinned a snapshot at {state.Index}, not at its applied index {index}.");
        }

        var members = _node.Members.ToArray();
        PreparedSnapshot Write()
        {
            using (state)
            {
                return _storage.PrepareSnapshot(index, term, members, state.WriteTo);
            }
        }

        if (_runSnapshot is null)
        {
            Install(Write());
            return;
        }

        _snapshotJob = _runSnapshot(Write);
        InstallWrittenSnapshot();
    }

    private void InstallWrittenSnapshot()
    {
        if (_snapshotJob is not { IsCompleted: true } job)
        {
            return;
        }

        _snapshotJob = null;
        if (!job.IsCompletedSuccessfully)
        {
            Log.SnapshotFailed(_logger, _node.Id, job.Exception?.GetBaseException() ?? new OperationCanceledException());
            return;
        }

#pragma warning disable VSTHRD002 // The job has completed: its result is there, nothing waits.
        Install(job.Result);
#pragma warning restore VSTHRD002
    }

    private void Install(PreparedSnapshot prepared)
    {
        using (prepared)
        {
            if (prepared.Index <= _node.SnapshotIndex)
            {
                // A snapshot from the leader overtook this one while it was written.
                return;
            }

            _node.Compact(_storage.InstallSnapshot(prepared));

            // What was applied while it was written is not in it: it counts towards the next one.
            _logBytesSinceSnapshot = Math.Max(0, _logBytesSinceSnapshot - _logBytesInRunningSnapshot);
        }

        Log.SnapshotTaken(_logger, _node.Id, prepared.Index);
    }

    private static long LogBytes(LogEntry entry) => entry.Data.Length + EntryOverheadBytes;

    /// <summary>Log messages of the Ready pipeline; event ids in the Raft host's block, 3000-3099.</summary>
    private static partial class Log
    {
        [LoggerMessage(EventId = 3005, EventName = "RaftSnapshotTaken", Level = LogLevel.Information,
            Message = "Raft member {Id} took a snapshot at index {Index} and compacted its log")]
        public static partial void SnapshotTaken(ILogger logger, string id, ulong index);

        [LoggerMessage(EventId = 3006, EventName = "RaftSnapshotInstalled", Level = LogLevel.Information,
            Message = "Raft member {Id} installed a snapshot from the leader at index {Index}")]
        public static partial void SnapshotInstalled(ILogger logger, string id, ulong index);

        [LoggerMessage(EventId = 3007, EventName = "RaftSendFailed", Level = LogLevel.Warning, Message = "Raft transport failed to send {MessageType} to {To}")]
        public static partial void SendFailed(ILogger logger, string messageType, string to, Exception exception);

        [LoggerMessage(EventId = 3011, EventName = "RaftSnapshotFailed", Level = LogLevel.Error,
            Message = "Raft member {Id} could not write a snapshot; its log keeps every entry, and it tries again later")]
        public static partial void SnapshotFailed(ILogger logger, string id, Exception exception);
    }
}
