using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace HsmVault.Consensus.Tests;

/// <summary>The host's I/O loop with real timers (10 ms ticks) over an in-process transport.</summary>
public sealed partial class RaftHostTests : IAsyncLifetime
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    private readonly string _directory = Path.Combine(Path.GetTempPath(), "hsmvault-raft-host-" + Guid.NewGuid().ToString("N"));
    private readonly LoopbackTransport _transport = new();
    private readonly RecordingLogger _logger = new();
    private readonly List<RaftHost> _hosts = [];
    private readonly List<IDisposable> _disposables = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var host in _hosts)
        {
            await host.DisposeAsync();
        }

        foreach (var disposable in _disposables)
        {
            disposable.Dispose();
        }

        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }

        Assert.Empty(_logger.Errors);
    }

    [Fact]
    public async Task ProposeAsync_OnLeader_ReturnsTheApplyResult_AndFollowersApplyToo()
    {
        var (hosts, machines) = await StartFleetAsync(3);
        var leader = await WaitForLeaderAsync(hosts);

        var first = await leader.ProposeAsync(CounterStateMachine.Charge(2), CancellationToken.None);
        var second = await leader.ProposeAsync(CounterStateMachine.Charge(2), CancellationToken.None);

        Assert.Equal([1, 1], first);
        Assert.Equal([1, 2], second);
        await WaitUntilAsync(() => machines.All(m => m.Count(2) == 2));
    }

    [Fact]
    public async Task ProposeAsync_OnFollower_ThrowsNotLeaderNamingTheLeader()
    {
        var (hosts, _) = await StartFleetAsync(3);
        var leader = await WaitForLeaderAsync(hosts);
        var follower = hosts.First(h => h != leader);
        await WaitUntilAsync(() => follower.LeaderId is not null);

        var exception = await Assert.ThrowsAsync<NotLeaderException>(
            () => follower.ProposeAsync(CounterStateMachine.Charge(1), CancellationToken.None));

        Assert.Equal(leader.Status!.Id, exception.LeaderId);
    }

    [Fact]
    public async Task ReadBarrierAsync_OnLeader_CompletesAfterEarlierWritesAreApplied()
    {
        var (hosts, machines) = await StartFleetAsync(3);
        var leader = await WaitForLeaderAsync(hosts);
        await leader.ProposeAsync(CounterStateMachine.Charge(5), CancellationToken.None);

        await leader.ReadBarrierAsync(CancellationToken.None);

        Assert.Equal(1, machines[hosts.IndexOf(leader)].Count(5));
        var follower = hosts.First(h => h != leader);
        await Assert.ThrowsAsync<NotLeaderException>(() => follower.ReadBarrierAsync(CancellationToken.None));
    }

    [Fact]
    public async Task ProposeAsync_LeaderCutOffFromTheFleet_FailsInsteadOfHanging()
    {
        var (hosts, _) = await StartFleetAsync(3, requestTimeout: TimeSpan.FromMilliseconds(500));
        var leader = await WaitForLeaderAsync(hosts);
        _transport.Isolate(leader.Status!.Id);

        var exception = await Assert.ThrowsAnyAsync<Exception>(
            () => leader.ProposeAsync(CounterStateMachine.Charge(1), CancellationToken.None));

        Assert.True(exception is QuorumUnavailableException or NotLeaderException, exception.ToString());
    }

    [Fact]
    public async Task StartAsync_AfterRestart_RestoresSnapshotAndAppliesTheCommittedLog()
    {
        var marks = new MemoryMarkStore();
        var storage = new FileRaftStorage(_directory);
        var machine = new CounterStateMachine();
        var host = CreateHost("n1", ["n1"], storage, machine, marks, snapshotInterval: 5);
        await host.StartAsync(CancellationToken.None);
        await WaitForLeaderAsync([host]);
        for (var i = 0; i < 12; i++)
        {
            await host.ProposeAsync(CounterStateMachine.Charge(3), CancellationToken.None);
        }

        await host.StopAsync(CancellationToken.None);
        storage.Dispose();
        Assert.NotNull(marks.Read());

        // The state machine lost everything (it is in memory here); the data directory rebuilds it.
        var reopened = new FileRaftStorage(_directory);
        _disposables.Add(reopened);
        Assert.NotNull(reopened.Load().Snapshot);
        var rebuilt = new CounterStateMachine();
        var restarted = CreateHost("n1", ["n1"], reopened, rebuilt, marks, snapshotInterval: 5);
        await restarted.StartAsync(CancellationToken.None);

        Assert.Equal(CounterStateMachine.Limit, rebuilt.Count(3));
        Assert.Equal(machine.Chain, rebuilt.Chain);
        await WaitForLeaderAsync([restarted]);
        Assert.Equal([0, CounterStateMachine.Limit], await restarted.ProposeAsync(CounterStateMachine.Charge(3), CancellationToken.None));
    }

    [Fact]
    public async Task WhileASnapshotIsBeingWritten_WritesGoOnCommitting_ThenItIsInstalled()
    {
        var storage = new FileRaftStorage(_directory);
        _disposables.Add(storage);
        using var release = new ManualResetEventSlim();
        var machine = new SlowSnapshots(new CounterStateMachine(), release);
        var options = new RaftHostOptions { NodeId = "n1", TickInterval = TimeSpan.FromMilliseconds(10), SnapshotInterval = 3, RequestTimeout = Patience };
        options.Members.Add("n1");
        var host = new RaftHost(options, storage, machine, _transport, new MemoryMarkStore(), TimeProvider.System, new Random(1), _logger);
        _transport.Hosts["n1"] = host;
        _hosts.Add(host);
        await host.StartAsync(CancellationToken.None);
        await WaitForLeaderAsync([host]);
        try
        {
            for (var i = 0; i < 3; i++)
            {
                await host.ProposeAsync(CounterStateMachine.Charge(1), CancellationToken.None).WaitAsync(Patience);
            }

            // The snapshot of the state at 3 is being written, and its writer is stuck: the loop is not.
            await WaitUntilAsync(() => machine.Writing);
            for (var i = 0; i < 5; i++)
            {
                await host.ProposeAsync(CounterStateMachine.Charge(2), CancellationToken.None).WaitAsync(Patience);
            }

            Assert.Equal(0UL, host.Status!.SnapshotIndex);
        }
        finally
        {
            release.Set();
        }

        // Installed without another write: the loop's ticks look for it.
        await WaitUntilAsync(() => host.Status!.SnapshotIndex > 0);

        // The snapshot holds the state as it was when pinned, not as it was when written.
        var snapshot = storage.Load().Snapshot!;
        var restored = new CounterStateMachine();
        using (var data = snapshot.Data.OpenRead())
        {
            restored.RestoreSnapshot(snapshot.Index, data);
        }

        Assert.Equal(snapshot.Index, restored.AppliedIndex);
        Assert.InRange(restored.Count(1), 1, 3);
        Assert.Equal(0, restored.Count(2));
    }

    [Fact]
    public async Task ALargeSnapshot_IsNotRewrittenUntilTheLogHoldsAQuarterOfIt()
    {
        // Every 2 entries by count; but each snapshot is 4 KB and each entry about 33 bytes of log, so after the
        // first snapshot the next waits for about 31 entries (1 KB of log).
        var storage = new FileRaftStorage(_directory);
        _disposables.Add(storage);
        var host = await StartPaddedAsync(storage);

        var snapshotIndexes = await ProposeAndWatchSnapshotsAsync(host, storage, 80);

        // The first one by count alone (no size known yet), then far apart, never every 2 entries.
        Assert.InRange(snapshotIndexes.Count, 2, 3);
        Assert.True(snapshotIndexes[0] <= 4, string.Join(", ", snapshotIndexes));
        Assert.True(snapshotIndexes[1] - snapshotIndexes[0] >= 25, string.Join(", ", snapshotIndexes));
    }

    [Fact]
    public async Task ALargeSnapshot_AfterARestart_IsStillNotRewrittenForALittleLog()
    {
        var storage = new FileRaftStorage(_directory);
        var host = await StartPaddedAsync(storage);
        await ProposeAndWatchSnapshotsAsync(host, storage, 5);

        // Written in the background and installed at a later tick: on a loaded machine, after the last proposal.
        await WaitUntilAsync(() => host.Status!.SnapshotIndex > 0);
        await host.StopAsync(CancellationToken.None);
        storage.Dispose();

        // The restarted member knows its stored snapshot's size: a few entries do not make it write another.
        var reopened = new FileRaftStorage(_directory);
        _disposables.Add(reopened);
        var stored = reopened.Load().Snapshot!.Index;
        var restarted = await StartPaddedAsync(reopened);
        var snapshotIndexes = await ProposeAndWatchSnapshotsAsync(restarted, reopened, 10);

        Assert.Equal([stored], snapshotIndexes);
    }

    [Fact]
    public async Task ALargeSnapshot_OfAMemberRestartedEveryFewEntries_IsStillTaken()
    {
        // Ten entries per run, fewer than the ~31 the byte rule wants. The state outlives each run, as vault.db does,
        // so nothing is applied again at a start: the log found there must count, or the runs never add up.
        var state = new PaddedSnapshots(new CounterStateMachine(), 4096);
        var first = 0UL;
        var last = 0UL;
        for (var run = 0; run < 7; run++)
        {
            var storage = new FileRaftStorage(_directory);
            var host = await StartPaddedAsync(storage, state);
            var seen = await ProposeAndWatchSnapshotsAsync(host, storage, 10);
            await host.StopAsync(CancellationToken.None);
            storage.Dispose();
            first = first == 0 && seen.Count > 0 ? seen[0] : first;
            last = seen.Count > 0 ? seen[^1] : last;
        }

        Assert.NotEqual(0UL, first);
        Assert.True(last >= first + 25, $"snapshots at {first} and {last}");
    }

    /// <summary>A fleet of one whose snapshots are 4 KB, taken every 2 entries by count.</summary>
    private async Task<RaftHost> StartPaddedAsync(FileRaftStorage storage, PaddedSnapshots? state = null)
    {
        var options = new RaftHostOptions { NodeId = "n1", TickInterval = TimeSpan.FromMilliseconds(10), SnapshotInterval = 2, RequestTimeout = Patience };
        options.Members.Add("n1");
        var host = new RaftHost(options, storage, state ?? new PaddedSnapshots(new CounterStateMachine(), 4096), _transport, new MemoryMarkStore(), TimeProvider.System, new Random(1), _logger);
        _transport.Hosts["n1"] = host;
        _hosts.Add(host);
        await host.StartAsync(CancellationToken.None);
        await WaitForLeaderAsync([host]);
        return host;
    }

    /// <summary>Commits <paramref name="count"/> charges one by one; returns the indexes of the stored snapshots seen after each.</summary>
    private static async Task<List<ulong>> ProposeAndWatchSnapshotsAsync(RaftHost host, FileRaftStorage storage, int count)
    {
        var snapshotIndexes = new List<ulong>();
        for (var i = 0; i < count; i++)
        {
            var before = host.Status!.AppliedIndex;
            await host.ProposeAsync(CounterStateMachine.Charge(i % 7), CancellationToken.None);
            await WaitUntilAsync(() => host.Status!.AppliedIndex > before);
            if (storage.Load().Snapshot is { } snapshot && !snapshotIndexes.Contains(snapshot.Index))
            {
                snapshotIndexes.Add(snapshot.Index);
            }
        }

        return snapshotIndexes;
    }

    private async Task<(List<RaftHost> Hosts, List<CounterStateMachine> Machines)> StartFleetAsync(int count, TimeSpan? requestTimeout = null)
    {
        var ids = Enumerable.Range(1, count).Select(i => $"n{i}").ToArray();
        var hosts = new List<RaftHost>();
        var machines = new List<CounterStateMachine>();
        foreach (var id in ids)
        {
            var machine = new CounterStateMachine();
            var host = CreateHost(id, ids, new MemoryRaftStorage(), machine, new MemoryMarkStore(), 100, requestTimeout);
            hosts.Add(host);
            machines.Add(machine);
        }

        foreach (var host in hosts)
        {
            await host.StartAsync(CancellationToken.None);
        }

        return (hosts, machines);
    }

    private RaftHost CreateHost(
        string id,
        string[] members,
        IRaftStorage storage,
        CounterStateMachine machine,
        IHighWaterMarkStore marks,
        int snapshotInterval,
        TimeSpan? requestTimeout = null)
    {
        var options = new RaftHostOptions
        {
            NodeId = id,
            TickInterval = TimeSpan.FromMilliseconds(10),
            SnapshotInterval = snapshotInterval,
            RequestTimeout = requestTimeout ?? Patience,
        };
        foreach (var member in members)
        {
            options.Members.Add(member);
        }

        var host = new RaftHost(options, storage, machine, _transport, marks, TimeProvider.System, new Random(id.GetHashCode(StringComparison.Ordinal)), _logger);
        _transport.Hosts[id] = host;
        _hosts.Add(host);
        return host;
    }

    private static async Task<RaftHost> WaitForLeaderAsync(IReadOnlyList<RaftHost> hosts)
    {
        RaftHost? leader = null;
        await WaitUntilAsync(() => (leader = hosts.FirstOrDefault(h => h.IsLeader)) is not null);
        return leader!;
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "Condition not reached in time.");
            await Task.Delay(10);
        }
    }

    private sealed class LoopbackTransport : IRaftTransport
    {
        private readonly ConcurrentDictionary<string, bool> _isolated = new();

        public ConcurrentDictionary<string, RaftHost> Hosts { get; } = new();

        public void Isolate(string id) => _isolated[id] = true;

        public void Send(RaftMessage message)
        {
            if (!_isolated.ContainsKey(message.From) && !_isolated.ContainsKey(message.To) && Hosts.TryGetValue(message.To, out var host))
            {
                host.Deliver(message);
            }
        }
    }

    private sealed class MemoryMarkStore : IHighWaterMarkStore
    {
        private HighWaterMark? _mark;

        public HighWaterMark? Read() => _mark;

        public void Write(HighWaterMark mark) => _mark = mark;
    }

    private sealed class RecordingLogger : ILogger<RaftHost>
    {
        public ConcurrentQueue<string> Errors { get; } = new();

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (logLevel >= LogLevel.Error)
            {
                Errors.Enqueue(formatter(state, exception));
            }
        }
    }

    /// <summary>A counter whose snapshots carry <paramref name="padding"/> bytes more: a large state, for the snapshot policy.</summary>
    private sealed class PaddedSnapshots(CounterStateMachine inner, int padding) : IReplicatedStateMachine
    {
        public ulong AppliedIndex => inner.AppliedIndex;

        public byte[] Apply(ulong index, ReadOnlySpan<byte> command) => inner.Apply(index, command);

        public ulong WriteSnapshot(Stream destination)
        {
            var index = inner.WriteSnapshot(destination);
            destination.Write(new byte[padding]);
            return index;
        }

        public void RestoreSnapshot(ulong index, Stream source) => inner.RestoreSnapshot(index, source); // ignores the padding
    }

    /// <summary>A state machine whose pinned snapshots are written only once <c>release</c> is set.</summary>
    private sealed class SlowSnapshots(CounterStateMachine inner, ManualResetEventSlim release) : IReplicatedStateMachine
    {
        private volatile bool _writing;

        public bool Writing => _writing;

        private ManualResetEventSlim Release => release;

        public ulong AppliedIndex => inner.AppliedIndex;

        public byte[] Apply(ulong index, ReadOnlySpan<byte> command) => inner.Apply(index, command);

        public ulong WriteSnapshot(Stream destination) => inner.WriteSnapshot(destination);

        public void RestoreSnapshot(ulong index, Stream source) => inner.RestoreSnapshot(index, source);

        public IStateSnapshot CaptureSnapshot() => new Pinned(this, inner.CreateSnapshot(out var index), index);

        private sealed class Pinned(SlowSnapshots owner, byte[] data, ulong index) : IStateSnapshot
        {
            public ulong Index => index;

            public void WriteTo(Stream destination)
            {
                owner._writing = true;
                owner.Release.Wait();
                destination.Write(data);
                owner._writing = false;
            }

            public void Dispose()
            {
            }
        }
    }
}
