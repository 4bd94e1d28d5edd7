namespace HsmVault.Consensus.Tests.Simulation;

/// <summary>What the simulated clients run.</summary>
public enum SimulationWorkload
{
    /// <summary><see cref="CounterStateMachine"/>: charges and ReadIndex reads, checked by <see cref="SafetyChecker"/>.</summary>
    Counter,

    /// <summary>The vault's own <c>RecordTransitions</c> through Raft, its client history checked for linearizability.</summary>
    Vault,
}

/// <summary>A bug planted in the simulated vault's state machine, to show that the history check sees it.</summary>
public enum PlantedBug
{
    /// <summary>The real rule.</summary>
    None,

    /// <summary>A charge answers as if it counted, but the count is not stored.</summary>
    ChargeDoesNotCount,
}

/// <summary>The knobs of one simulated scenario. Every random choice derives from the seed.</summary>
public sealed record SimulationOptions
{
    public SimulationWorkload Workload { get; init; } = SimulationWorkload.Counter;

    /// <summary>Vault workload only: a deliberate bug in the state machine (negative control).</summary>
    public PlantedBug PlantedBug { get; init; }

    /// <summary>Simulated clients of the vault workload, each with at most one operation in flight.</summary>
    public int Clients { get; init; } = 4;

    /// <summary>Users the vault workload's clients share (few, so that they contend).</summary>
    public int Users { get; init; } = 2;

    /// <summary>
    /// Stop a run at its first Raft safety violation. The negative controls of the history check turn this off, so
    /// that the clients' history shows whether they could see the violation.
    /// </summary>
    public bool StopAtFirstViolation { get; init; } = true;

    public int Members { get; init; } = 3;

    /// <summary>Ticks with faults; then the network heals and every member restarts (the liveness phase).</summary>
    public int FaultTicks { get; init; } = 600;

    /// <summary>Bound on the liveness phase: a leader must be elected and a new command applied everywhere.</summary>
    public int LivenessTicks { get; init; } = 400;

    public int ElectionTicks { get; init; } = 10;

    public int MaxDelayTicks { get; init; } = 3;

    public double DropRate { get; init; } = 0.05;

    public double DuplicateRate { get; init; } = 0.03;

    /// <summary>Per tick: chance that a partition starts (when none is active).</summary>
    public double PartitionRate { get; init; } = 0.01;

    /// <summary>Per tick: chance that a random member crashes (unsynced writes lost).</summary>
    public double CrashRate { get; init; } = 0.005;

    /// <summary>Per fsync: chance of a crash after writing but before the fsync (unsynced writes may be lost).</summary>
    public double CrashBeforeSyncRate { get; init; } = 0.002;

    /// <summary>Per fsync: chance of a crash right after it, before the hard state, the mark or any message.</summary>
    public double CrashAfterSyncRate { get; init; }

    /// <summary>Per high-water mark write: chance that power goes during the (slow) token write, before the mark is stored.</summary>
    public double CrashDuringMarkWriteRate { get; init; }

    /// <summary>Per applied command: chance of a crash after the log is durable and before the command is applied.</summary>
    public double CrashBeforeApplyRate { get; init; }

    /// <summary>
    /// Clients' proposals of a tick are made durable together at the tick's end (one Ready, one fsync, many entries),
    /// as the daemon's loop batches what arrived while it was busy; otherwise each proposal is drained at once.
    /// </summary>
    public bool BatchProposals { get; init; }

    /// <summary>Counter workload: up to this many proposals per tick (each with <see cref="ProposeRate"/>), to grow batches.</summary>
    public int ProposalsPerTick { get; init; } = 1;

    /// <summary>
    /// Counter workload: clients write and read at any member through its <see cref="LeaderRouter"/>, which forwards to
    /// the leader over a <see cref="Routing.SimulatedLeaderLink"/> (lossy, delayed, partitioned like the Raft network),
    /// instead of proposing at the core; the checks add that no write is committed twice (a resend).
    /// </summary>
    public bool RouteThroughAnyMember { get; init; }

    /// <summary>With <see cref="RouteThroughAnyMember"/>: a deliberate misreport by the link (negative control).</summary>
    public Routing.PlantedLinkBug PlantedLinkBug { get; init; }

    /// <summary>Per tick: chance a client proposes at a random member.</summary>
    public double ProposeRate { get; init; } = 0.3;

    /// <summary>Per tick: chance a client issues a linearizable read at a random member.</summary>
    public double ReadRate { get; init; } = 0.1;

    /// <summary>Take a snapshot after this many applied entries (0: never).</summary>
    public int SnapshotInterval { get; init; }

    /// <summary>On restart, chance that the member's disk comes back from an older backup (rollback).</summary>
    public double RollbackRate { get; init; }

    /// <summary>On restart, chance that the member's disk comes back empty (wiped); the mark survives.</summary>
    public double WipeRate { get; init; }

    /// <summary>When false, members forget their high-water mark (to show the guard is what keeps them safe).</summary>
    public bool GuardEnabled { get; init; } = true;

    /// <summary>
    /// Require the liveness phase to succeed. With rollbacks on several members at once, every member that could
    /// lead may be behind its mark; the guard then rightly prefers unavailability to unsafety.
    /// </summary>
    public bool RequireLiveness { get; init; } = true;

    /// <summary>
    /// 0: the mark store keeps exactly what the node asks. N &gt; 0: it vouches ahead in windows of N entries, as
    /// issue 8 proposed (the index rounded up to the next multiple of N, rewritten only when the node's position
    /// passes the stored bound or term or vote change). Used to show why the daemon does not do this: safety holds,
    /// but a crash then looks like a rollback, and a member with nobody to catch up from waits for ever.
    /// </summary>
    public int VouchAheadWindow { get; init; }

    /// <summary>Only member 0 is ever rolled back or wiped (at most one member's disk misbehaves at a time).</summary>
    public bool DiskFaultsOnFirstMemberOnly { get; init; } = true;
}
