using System.Collections.Concurrent;
using System.Diagnostics;

namespace HsmVault.Consensus.Tests.Simulation;

/// <summary>Runs many seeds of a scenario across all cores and reports failing seeds with how to replay them.</summary>
internal static class SimulationRunner
{
    /// <summary>Environment variable that replays seeds: <c>scenario:seed[,scenario:seed...]</c>.</summary>
    public const string ReplayVariable = "HSMVAULT_SIM_REPLAY";

    public static IReadOnlyDictionary<string, SimulationOptions> Scenarios { get; } = new Dictionary<string, SimulationOptions>
    {
        ["three"] = new() { Members = 3 },
        ["five"] = new() { Members = 5, PartitionRate = 0.015, CrashRate = 0.008 },
        ["single"] = new() { Members = 1, FaultTicks = 300, CrashRate = 0.02 },
        ["snapshots"] = new() { Members = 3, SnapshotInterval = 5, CrashRate = 0.01, WipeRate = 0.3 },
        ["lossy"] = new() { Members = 5, DropRate = 0.25, DuplicateRate = 0.1, MaxDelayTicks = 8, SnapshotInterval = 20 },
        ["rollback"] = new() { Members = 3, CrashRate = 0.02, RollbackRate = 0.7, WipeRate = 0.2, SnapshotInterval = 25 },
        ["rollback5"] = new() { Members = 5, CrashRate = 0.02, RollbackRate = 0.7, SnapshotInterval = 25 },
        ["rollback-any"] = new()
        {
            Members = 3, CrashRate = 0.02, RollbackRate = 0.9, DiskFaultsOnFirstMemberOnly = false, RequireLiveness = false,
        },
        // The pipeline's seams under power loss at every point of a Ready, with batches of several proposals:
        // before and after the fsync, during the mark's token write, and between persisting and applying.
        ["crash-points"] = new()
        {
            Members = 3, CrashBeforeSyncRate = 0.01, CrashAfterSyncRate = 0.01, CrashDuringMarkWriteRate = 0.01,
            CrashBeforeApplyRate = 0.005, BatchProposals = true, ProposalsPerTick = 3, SnapshotInterval = 15,
        },
        ["rollback-crash-points"] = new()
        {
            Members = 3, CrashRate = 0.01, RollbackRate = 0.7, WipeRate = 0.2, SnapshotInterval = 25, CrashBeforeSyncRate = 0.01,
            CrashAfterSyncRate = 0.01, CrashDuringMarkWriteRate = 0.01, CrashBeforeApplyRate = 0.005, BatchProposals = true,
            ProposalsPerTick = 3,
        },

        // Clients at any member, through the daemon's LeaderRouter: forwarded writes and follower reads over a lossy link.
        ["routed"] = new() { Members = 3, RouteThroughAnyMember = true, DropRate = 0.1, CrashRate = 0.01, SnapshotInterval = 20 },
        ["routed5"] = new()
        {
            Members = 5, RouteThroughAnyMember = true, DropRate = 0.15, DuplicateRate = 0.05, MaxDelayTicks = 5, PartitionRate = 0.015,
            CrashRate = 0.008, SnapshotInterval = 20,
        },
        ["routed-crash-points"] = new()
        {
            Members = 3, RouteThroughAnyMember = true, CrashRate = 0.01, RollbackRate = 0.5, WipeRate = 0.2, SnapshotInterval = 15,
            CrashBeforeSyncRate = 0.01, CrashAfterSyncRate = 0.01, CrashDuringMarkWriteRate = 0.01, CrashBeforeApplyRate = 0.005,
            BatchProposals = true, ProposalsPerTick = 3,
        },

        // Negative control: a link that reports a lost answer as "not the leader" makes the router resend.
        ["routed-misreporting-link"] = new()
        {
            Members = 3, RouteThroughAnyMember = true, DropRate = 0.1, PlantedLinkBug = Routing.PlantedLinkBug.LostAnswerLooksNotLeader,
        },

        // Vouching ahead in windows of 8 (issue 8's proposal), run to show what it costs; see SimulationTests.
        ["single-vouch-ahead"] = new() { Members = 1, FaultTicks = 300, CrashRate = 0.02, VouchAheadWindow = 8 },
        ["three-vouch-ahead"] = new() { Members = 3, CrashRate = 0.02, VouchAheadWindow = 8 },
        ["rollback-vouch-ahead"] = new()
        {
            Members = 3, CrashRate = 0.02, RollbackRate = 0.7, WipeRate = 0.2, SnapshotInterval = 25, VouchAheadWindow = 8,
        },
        ["rollback-unguarded"] = new()
        {
            Members = 3, CrashRate = 0.02, RollbackRate = 0.9, GuardEnabled = false, DiskFaultsOnFirstMemberOnly = false,
        },

        // The vault's own rule through Raft, with the clients' history checked for linearizability.
        ["vault3"] = new() { Workload = SimulationWorkload.Vault, Members = 3, DropRate = 0.1, CrashRate = 0.01, SnapshotInterval = 20 },
        ["vault5"] = new()
        {
            Workload = SimulationWorkload.Vault, Members = 5, DropRate = 0.2, DuplicateRate = 0.08, MaxDelayTicks = 6,
            PartitionRate = 0.015, CrashRate = 0.008, SnapshotInterval = 20,
        },
        ["vault-rollback"] = new()
        {
            Workload = SimulationWorkload.Vault, Members = 3, CrashRate = 0.02, RollbackRate = 0.7, WipeRate = 0.2, SnapshotInterval = 25,
        },
        ["vault-crash-points"] = new()
        {
            Workload = SimulationWorkload.Vault, Members = 3, DropRate = 0.1, CrashRate = 0.005, SnapshotInterval = 20,
            CrashBeforeSyncRate = 0.01, CrashAfterSyncRate = 0.01, CrashDuringMarkWriteRate = 0.01, CrashBeforeApplyRate = 0.005,
            BatchProposals = true,
        },
        ["vault-rollback5"] = new()
        {
            Workload = SimulationWorkload.Vault, Members = 5, DropRate = 0.1, CrashRate = 0.02, RollbackRate = 0.7, SnapshotInterval = 25,
        },

        ["vault-routed"] = new()
        {
            Workload = SimulationWorkload.Vault, RouteThroughAnyMember = true, Members = 3, DropRate = 0.1, CrashRate = 0.01,
            SnapshotInterval = 20,
        },
        ["vault-routed-rollback"] = new()
        {
            Workload = SimulationWorkload.Vault, RouteThroughAnyMember = true, Members = 3, CrashRate = 0.02, RollbackRate = 0.7,
            WipeRate = 0.2, SnapshotInterval = 25, CrashBeforeSyncRate = 0.01, CrashAfterSyncRate = 0.01, CrashBeforeApplyRate = 0.005,
        },

        // Negative controls: the history check must reject these.
        ["vault-unguarded"] = new()
        {
            Workload = SimulationWorkload.Vault, Members = 3, CrashRate = 0.02, RollbackRate = 0.9, GuardEnabled = false,
            DiskFaultsOnFirstMemberOnly = false, RequireLiveness = false, StopAtFirstViolation = false,
        },
        ["vault-miscount"] = new() { Workload = SimulationWorkload.Vault, Members = 3, PlantedBug = PlantedBug.ChargeDoesNotCount },
    };

    public sealed record Failure(string Scenario, int Seed, string Message)
    {
        public override string ToString() =>
            $"{Scenario}:{Seed}: {Message}\n    replay: {ReplayVariable}={Scenario}:{Seed} dotnet test tests/HsmVault.Consensus.Tests --filter Simulation_ReplaysSeed";
    }

    public sealed record Summary(int Runs, IReadOnlyList<Failure> Failures, IReadOnlyList<SimulationResult> Results, TimeSpan Elapsed)
    {
        public double SeedsPerSecond => Runs / Elapsed.TotalSeconds;
    }

    public static Summary Run(string scenario, int firstSeed, int count)
    {
        var options = Scenarios[scenario];
        var failures = new ConcurrentBag<Failure>();
        var results = new ConcurrentBag<SimulationResult>();
        var stopwatch = Stopwatch.StartNew();
        var next = firstSeed - 1;
        var last = firstSeed + count - 1;

        // Dedicated threads rather than the thread pool, so that the simulator never starves anything else.
        var workers = Enumerable.Range(0, Environment.ProcessorCount).Select(_ => new Thread(() =>
        {
            int seed;
            while ((seed = Interlocked.Increment(ref next)) <= last)
            {
                try
                {
                    using var simulation = new Simulation(options, seed);
                    results.Add(simulation.Run());
                }
                catch (Exception exception)
                {
                    failures.Add(new Failure(scenario, seed, exception is SafetyViolationException or Vault.HistoryViolationException ? exception.Message : exception.ToString()));
                }
            }
        })).ToList();
        workers.ForEach(w => w.Start());
        workers.ForEach(w => w.Join());
        return new Summary(count, [.. failures.OrderBy(f => f.Seed)], [.. results], stopwatch.Elapsed);
    }
}
