namespace HsmVault.Consensus.Tests.Simulation;

/// <summary>One simulated member: its disk, its application, its rollback guard's mark, and its Raft core while running.</summary>
internal sealed class SimMember(string id, ISimulatedStateMachine stateMachine)
{
    public string Id { get; } = id;

    public MemoryRaftStorage Storage { get; set; } = new();

    public ISimulatedStateMachine StateMachine { get; set; } = stateMachine;

    /// <summary>The high-water mark, kept apart from the disk (in production, in the HSM).</summary>
    public HighWaterMark? Mark { get; set; }

    /// <summary>The running core; null while crashed.</summary>
    public RaftNode? Node { get; set; }

    /// <summary>What the member's router runs on (its <see cref="RaftHost"/> in the daemon); null while crashed.</summary>
    public Routing.SimulatedRaftMember? Raft { get; set; }

    /// <summary>The daemon's Ready handling around <see cref="Node"/>; null while crashed.</summary>
    public ReadyPipeline? Pipeline { get; set; }

    public long RestartAt { get; set; }

    public ulong Applied { get; set; }

    public (MemoryRaftStorage Storage, ISimulatedStateMachine StateMachine)? Backup { get; set; }
}
