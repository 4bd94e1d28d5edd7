using Microsoft.Extensions.Logging.Abstractions;

namespace HsmVault.Consensus.Tests;

/// <summary>
/// etcd-raft's test network in miniature: members with in-memory storage, messages delivered synchronously
/// until the fleet is quiet, links that can be cut. Deterministic: only the election timeouts are random,
/// and they come from a seeded <see cref="Random"/>.
/// </summary>
internal sealed class TestNetwork
{
    public const int ElectionTicks = 10;

    private readonly HashSet<(string From, string To)> _cut = [];
    private readonly Queue<RaftMessage> _queue = new();
    private readonly string[] _ids;

    public TestNetwork(int members, Func<string, RaftPersistentState>? initialState = null, int seed = 1)
    {
        _ids = [.. Enumerable.Range(1, members).Select(i => $"n{i}")];
        var random = new Random(seed);
        foreach (var id in _ids)
        {
            var peer = new Peer(id, _queue);
            if (initialState is not null)
            {
                var state = initialState(id);
                if (state.Snapshot is not null)
                {
                    peer.Storage.SaveSnapshot(state.Snapshot);
                }

                peer.Storage.Append(state.Entries);
                peer.Storage.Sync();
                peer.Storage.SaveHardState(state.HardState);
            }

            Peers[id] = peer;
            Start(id, random.Next());
        }
    }

    public Dictionary<string, Peer> Peers { get; } = [];

    /// <summary>Messages dropped by a cut link or a stopped member, for assertions.</summary>
    public List<RaftMessage> Dropped { get; } = [];

    /// <summary>Every message delivered, for assertions.</summary>
    public List<RaftMessage> Delivered { get; } = [];

    public IReadOnlyList<string> Ids => _ids;

    public RaftNode Node(string id) => Peers[id].Node ?? throw new InvalidOperationException($"{id} is stopped.");

    public RaftNodeOptions Options(string id, int seed) => new()
    {
        Id = id,
        Members = _ids,
        ElectionTicks = ElectionTicks,
        HeartbeatTicks = 1,
        MaxEntriesPerMessage = 4,
        Random = new Random(seed),
    };

    public void Start(string id, int seed = 7)
    {
        var peer = Peers[id];
        var state = peer.Storage.Load();
        if (state.Snapshot is { } snapshot && peer.StateMachine.AppliedIndex < snapshot.Index)
        {
            using var data = snapshot.Data.OpenRead();
            peer.StateMachine.RestoreSnapshot(snapshot.Index, data);
        }

        peer.Node = new RaftNode(Options(id, seed), state, peer.Mark, peer.StateMachine.AppliedIndex);
        peer.Pipeline = new ReadyPipeline(
            peer.Node, peer.Storage, peer.StateMachine, peer, peer, peer, snapshotInterval: 0, NullLogger.Instance);
        Drain(peer);
    }

    /// <summary>Power loss: unsynced writes are lost (all of them, here).</summary>
    public void Crash(string id)
    {
        Peers[id].Storage.Crash(new Random(0));
        Peers[id].Node = null;
        Peers[id].Pipeline = null;
    }

    public void Cut(string a, string b)
    {
        _cut.Add((a, b));
        _cut.Add((b, a));
    }

    public void Isolate(string id)
    {
        foreach (var other in _ids.Where(o => o != id))
        {
            Cut(id, other);
        }
    }

    public void Heal() => _cut.Clear();

    public void Tick(string id, int times = 1)
    {
        for (var i = 0; i < times; i++)
        {
            Node(id).Tick();
            Pump();
        }
    }

    public void TickAll(int times = 1)
    {
        for (var i = 0; i < times; i++)
        {
            foreach (var id in _ids.Where(id => Peers[id].Node is not null))
            {
                Node(id).Tick();
            }

            Pump();
        }
    }

    /// <summary>Ticks only <paramref name="id"/> until it leads (the others hear its campaign and answer).</summary>
    public void Elect(string id)
    {
        for (var i = 0; i < 4 * ElectionTicks && Node(id).Role != RaftRole.Leader; i++)
        {
            Tick(id);
        }

        Assert.Equal(RaftRole.Leader, Node(id).Role);
    }

    public ProposalTicket Propose(string id, byte[] command)
    {
        var ticket = Node(id).Propose(command) ?? throw new InvalidOperationException($"{id} is not leader.");
        Pump();
        return ticket;
    }

    /// <summary>Persists, sends and applies everything pending, delivering messages until the fleet is quiet.</summary>
    public void Pump()
    {
        foreach (var peer in Peers.Values)
        {
            Drain(peer);
        }

        while (_queue.TryDequeue(out var message))
        {
            var target = Peers[message.To];
            if (_cut.Contains((message.From, message.To)) || target.Node is null)
            {
                Dropped.Add(message);
                continue;
            }

            Delivered.Add(message);
            target.Node.Step(message);
            Drain(target);
        }
    }

    /// <summary>Delivers one crafted message to <paramref name="message"/>.To and drains its Ready (replies are queued, not delivered).</summary>
    public void StepOnly(RaftMessage message)
    {
        var target = Peers[message.To];
        target.Node!.Step(message);
        Drain(target, enqueue: false);
    }

    private static void Drain(Peer peer, bool enqueue = true)
    {
        peer.Enqueue = enqueue;
        peer.Pipeline?.Process();
        peer.Enqueue = true;
    }

    /// <summary>Compacts <paramref name="id"/>'s log into a snapshot of its state machine.</summary>
    public RaftSnapshot TakeSnapshot(string id)
    {
        var peer = Peers[id];
        var index = peer.StateMachine.AppliedIndex;
        var snapshot = peer.Storage.WriteSnapshot(index, Node(id).TryGetTerm(index)!.Value, _ids, destination => peer.StateMachine.WriteSnapshot(destination));
        Node(id).Compact(snapshot);
        return snapshot;
    }

    /// <summary>
    /// One member: its disk and application, and the seams of its <see cref="ReadyPipeline"/> — the mark store
    /// (in memory), the transport (into the network's queue) and the observer (recording what it applied and read).
    /// </summary>
    internal sealed class Peer(string id, Queue<RaftMessage> network) : IHighWaterMarkStore, IRaftTransport, IReadyObserver
    {
        public string Id { get; } = id;

        public MemoryRaftStorage Storage { get; set; } = new();

        public CounterStateMachine StateMachine { get; set; } = new();

        public HighWaterMark? Mark { get; set; }

        public RaftNode? Node { get; set; }

        public ReadyPipeline? Pipeline { get; set; }

        /// <summary>Whether sent messages go onto the network (false: only recorded in <see cref="Sent"/>).</summary>
        public bool Enqueue { get; set; } = true;

        public List<LogEntry> Applied { get; } = [];

        public Dictionary<ulong, byte[]> Results { get; } = [];

        public List<ReadState> ReadStates { get; } = [];

        public List<ulong> DroppedReads { get; } = [];

        public List<RaftMessage> Sent { get; } = [];

        HighWaterMark? IHighWaterMarkStore.Read() => Mark;

        void IHighWaterMarkStore.Write(HighWaterMark mark) => Mark = mark;

        void IRaftTransport.Send(RaftMessage message)
        {
            Sent.Add(message);
            if (Enqueue)
            {
                network.Enqueue(message);
            }
        }

        void IReadyObserver.SnapshotRestored(RaftSnapshot snapshot)
        {
        }

        void IReadyObserver.Applied(LogEntry entry, byte[]? result)
        {
            Applied.Add(entry);
            if (result is not null)
            {
                Results[entry.Index] = result;
            }
        }

        void IReadyObserver.ReadReady(ReadState read) => ReadStates.Add(read);

        void IReadyObserver.ReadDropped(ulong requestId) => DroppedReads.Add(requestId);
    }
}
