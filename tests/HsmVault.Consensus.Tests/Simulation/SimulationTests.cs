using Xunit.Abstractions;

namespace HsmVault.Consensus.Tests.Simulation;

/// <summary>The simulator uses every core; it runs alone so that timing-based tests elsewhere are not starved.</summary>
[CollectionDefinition(nameof(SimulationTests), DisableParallelization = true)]
public sealed class SimulationGroup;

[Collection(nameof(SimulationTests))]
public sealed class SimulationTests(ITestOutputHelper output)
{
    private const string HistoryRejected = "History of";

    /// <summary>Multiplies the seed counts below (e.g. 10 for a long soak run).</summary>
    private static readonly int Scale = int.TryParse(Environment.GetEnvironmentVariable("HSMVAULT_SIM_SCALE"), out var s) ? s : 1;

    [Theory]
    [InlineData("three", 4000)]
    [InlineData("five", 2000)]
    [InlineData("single", 1000)]
    [InlineData("snapshots", 3000)]
    [InlineData("lossy", 1500)]
    [InlineData("rollback", 4000)]
    [InlineData("crash-points", 2000)]
    [InlineData("rollback-crash-points", 1000)]
    [InlineData("rollback5", 1500)]
    [InlineData("rollback-any", 3000)]
    [InlineData("routed", 1500)]
    [InlineData("routed5", 800)]
    [InlineData("routed-crash-points", 1000)]
    public void Simulation_ManySeeds_HoldSafetyAndLiveness(string scenario, int seeds)
    {
        var summary = SimulationRunner.Run(scenario, firstSeed: 1, seeds * Scale);
        Report(scenario, summary);
        Assert.True(summary.Failures.Count == 0, string.Join("\n", summary.Failures.Take(20)));
    }

    [Fact]
    public void Simulation_RollbackWithoutGuard_IsCaughtBreakingSafety()
    {
        // The negative control: the same rollbacks without the high-water mark must break Raft's safety in
        // some seeds, or the simulator would not be able to see what the guard prevents.
        var summary = SimulationRunner.Run("rollback-unguarded", firstSeed: 1, 400);
        Report("rollback-unguarded", summary);
        Assert.Contains(summary.Failures, f => !f.Message.StartsWith("Liveness", StringComparison.Ordinal));
    }

    [Fact]
    public void Simulation_LinkThatReportsALostAnswerAsNotLeader_IsCaughtResendingAWrite()
    {
        // The negative control of the routed scenarios: with a link that misreports a lost answer as "not the leader,
        // nothing proposed", the router rightly asks again, the write commits twice, and the check must see it.
        var summary = SimulationRunner.Run("routed-misreporting-link", firstSeed: 1, 100);
        Report("routed-misreporting-link", summary);
        Assert.Contains(summary.Failures, f => f.Message.Contains("committed twice", StringComparison.Ordinal));
    }

    [Fact]
    public void Simulation_Routed_ForwardsWritesAndServesFollowerReads()
    {
        // The routed scenarios must exercise what they claim: writes acknowledged through routers (most of them at
        // followers, which forward), and reads served after a router's barrier.
        var summary = SimulationRunner.Run("routed", firstSeed: 1, 50);
        Report("routed", summary);
        Assert.Empty(summary.Failures);
        Assert.True(summary.Results.Average(r => r.AcknowledgedWrites) > 50, "few writes were acknowledged through the routers");
        Assert.True(summary.Results.Average(r => r.ForwardedWrites) > 25, "few writes were forwarded by a follower");
        Assert.True(summary.Results.Average(r => r.LinearizableReads) > 20, "few reads were served through the routers");
        Assert.True(summary.Results.Average(r => r.LeaderReadIndexes) > 10, "few follower reads asked the leader for a read index");
    }

    [Theory]
    [InlineData("routed-crash-points", 3)]
    [InlineData("vault3", 1)]
    public void Simulation_SameSeed_SameRun(string scenario, int seed)
    {
        // A failing seed is only useful if it replays: the routers' async code runs on the simulation's own queue and
        // clock, so two runs of a seed must match event for event.
        var first = RunTraced(scenario, seed);
        var second = RunTraced(scenario, seed);

        Assert.Equal(first.Result, second.Result);
        Assert.Equal(first.Trace, second.Trace);
        Assert.True(first.Result.Crashes > 0 && first.Result.Committed > 0, first.Result.ToString());

        static (SimulationResult Result, string[] Trace) RunTraced(string scenario, int seed)
        {
            using var simulation = new Simulation(SimulationRunner.Scenarios[scenario], seed, trace: true);
            return (simulation.Run(), [.. simulation.Trace]);
        }
    }

    [Theory]
    [InlineData("single-vouch-ahead", 500)]
    [InlineData("three-vouch-ahead", 1000)]
    [InlineData("rollback-vouch-ahead", 1000)]
    public void Simulation_MarkVouchedAheadInWindows_StaysSafeButStallsAfterCrashes(string scenario, int seeds)
    {
        // Issue 8 proposed writing the mark once per window of entries, vouching ahead. The guard's rule then
        // still holds (no seed breaks safety), but after a plain crash the log ends below the bound, which the
        // member cannot tell from a rollback: it will not campaign, and votes only for a log that reaches the
        // bound. With nobody whose log gets there (a fleet of one; a fleet whose members crashed in the same
        // window) no leader is ever elected again. This is why TokenHighWaterMarkStore does not vouch ahead;
        // if this test ever finds no stall, the argument in RaftNode.RestoreFromHighWaterMark needs revisiting.
        var summary = SimulationRunner.Run(scenario, firstSeed: 1, seeds);
        Report(scenario, summary);
        Assert.DoesNotContain(summary.Failures, f => !f.Message.StartsWith("Liveness", StringComparison.Ordinal));
        Assert.Contains(summary.Failures, f => f.Message.StartsWith("Liveness", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("vault3", 300)]
    [InlineData("vault5", 120)]
    [InlineData("vault-rollback", 400)]
    [InlineData("vault-crash-points", 200)]
    [InlineData("vault-rollback5", 120)]
    [InlineData("vault-routed", 600)]
    [InlineData("vault-routed-rollback", 400)]
    public void VaultSimulation_ManySeeds_HistoriesAreLinearizableWithinGuessBudget(string scenario, int seeds)
    {
        // The daemon's VaultStateMachine (signature checks, RecordTransitions, digest chain, snapshot format) replicated
        // by Raft under faults: every client history must be linearizable per user and never charge more guesses than
        // a registration allows. Each seed applies a few hundred signed commands to SQLite on every member, so there
        // are fewer seeds here than in the counter scenarios; HSMVAULT_SIM_SCALE multiplies them for a soak run.
        var summary = SimulationRunner.Run(scenario, firstSeed: 1, seeds * Scale);
        Report(scenario, summary);
        Assert.True(summary.Failures.Count == 0, string.Join("\n", summary.Failures.Take(5)));
    }

    [Fact]
    public void VaultSimulation_RollbackWithoutGuard_IsRejectedByHistoryCheck()
    {
        // Negative control: without the high-water mark, rolled-back members break Raft. The run goes on past the
        // violation, and the clients' history alone must show it in some seeds, or the check could not see a
        // consensus bug.
        var summary = SimulationRunner.Run("vault-unguarded", firstSeed: 1, 150);
        Report("vault-unguarded", summary);
        var rejected = summary.Failures.Count(f => f.Message.StartsWith(HistoryRejected, StringComparison.Ordinal));
        output.WriteLine($"{rejected} of {summary.Failures.Count} seeds that broke Raft were rejected by the history check");
        Assert.True(rejected > 0, "no seed's history was rejected");
    }

    [Fact]
    public void VaultSimulation_ChargeThatDoesNotCount_IsRejectedByHistoryCheck()
    {
        // Negative control: a state machine that answers Charged without storing the charge.
        const int seeds = 20;
        var summary = SimulationRunner.Run("vault-miscount", firstSeed: 1, seeds);
        Report("vault-miscount", summary);
        var rejected = summary.Failures.Count(f => f.Message.StartsWith(HistoryRejected, StringComparison.Ordinal));
        Assert.True(rejected >= seeds * 9 / 10, $"only {rejected} of {seeds} seeds rejected");
    }

    public static TheoryData<string, int> ReplaySeeds()
    {
        var data = new TheoryData<string, int>();
        var replay = Environment.GetEnvironmentVariable(SimulationRunner.ReplayVariable);
        if (string.IsNullOrWhiteSpace(replay))
        {
            // Regression seeds, run every time. three:922 once caught a durable commit index that covered
            // entries still unsynced (the hard state is now saved after the fsync).
            data.Add("three", 922);
            data.Add("three", 1);
            data.Add("rollback", 1);
            data.Add("vault3", 1);
            data.Add("routed", 1);
            return data;
        }

        foreach (var item in replay.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var parts = item.Split(':');
            data.Add(parts[0], int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture));
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(ReplaySeeds))]
    public void Simulation_ReplaysSeed(string scenario, int seed)
    {
        using var simulation = new Simulation(SimulationRunner.Scenarios[scenario], seed, trace: true);
        try
        {
            var result = simulation.Run();
            output.WriteLine(result.ToString());
        }
        catch
        {
            foreach (var line in simulation.Trace)
            {
                output.WriteLine(line);
            }

            throw;
        }
    }

    private void Report(string scenario, SimulationRunner.Summary summary)
    {
        var results = summary.Results;
        output.WriteLine(
            $"{scenario}: {summary.Runs} seeds in {summary.Elapsed.TotalSeconds:F1} s ({summary.SeedsPerSecond:F0} seeds/s), " +
            $"{summary.Failures.Count} failing; per run avg: committed {Avg(r => (double)r.Committed):F0}, " +
            $"acked writes {Avg(r => r.AcknowledgedWrites):F0}, reads {Avg(r => r.LinearizableReads):F0}, " +
            $"leaders {Avg(r => r.Leaders):F1}, crashes {Avg(r => r.Crashes):F1}, rollbacks {Avg(r => r.Rollbacks):F1}, wipes {Avg(r => r.Wipes):F1}, " +
            $"messages {Avg(r => r.Messages):F0}" +
            (results.Any(r => r.ForwardedWrites > 0) ? $", forwarded writes {Avg(r => r.ForwardedWrites):F0}, leader read indexes {Avg(r => r.LeaderReadIndexes):F0}" : "") +
            (results.Any(r => r.Operations > 0) ? $", client ops {Avg(r => r.Operations):F0} ({Avg(r => r.UnknownOutcomes):F1} unknown)" : ""));
        foreach (var failure in summary.Failures.Take(10))
        {
            output.WriteLine(failure.ToString());
        }

        double Avg(Func<SimulationResult, double> selector) => results.Count == 0 ? 0 : results.Average(selector);
    }
}
