using HsmVault.Testing.Linearizability;
using Xunit.Abstractions;

namespace HsmVault.Linearizability.Tests;

public sealed class RandomHistoryTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(30);

    [Theory]
    [InlineData(1, 8, 4, 250)]
    [InlineData(2, 8, 4, 250)]
    [InlineData(3, 16, 8, 250)]
    public void LargeGeneratedHistory_IsAcceptedQuickly(int seed, int clients, int keys, int opsPerClient)
    {
        var ops = RandomHistories.Vault(new Random(seed), clients, keys, opsPerClient, pendingRate: 0.03);

        var report = VaultHistory.Verify(ops, Budget);

        output.WriteLine($"seed {seed}: {ops.Count} operations, {ops.Count(o => o.IsPending)} pending, {keys} users: {report.Linearizability.Elapsed.TotalMilliseconds:F0} ms, {report.Linearizability.Partitions.Sum(p => p.StatesExplored)} states");
        Assert.True(report.Passed, $"seed {seed}: {report}");
        Assert.True(report.Linearizability.Elapsed < TimeSpan.FromSeconds(5), $"seed {seed}: took {report.Linearizability.Elapsed}");
    }

    [Theory]
    [InlineData(11, 6, 10)]
    [InlineData(12, 6, 10)]
    [InlineData(13, 10, 30)]
    [InlineData(14, 12, 40)]
    public void LargeSingleUserHistoryWithHighConcurrency_IsAccepted(int seed, int clients, int maxSpan)
    {
        var ops = RandomHistories.Vault(new Random(seed), clients, keys: 1, opsPerClient: 1200 / clients, pendingRate: 0.02, maxSpan);

        var report = VaultHistory.Verify(ops, Budget);

        output.WriteLine($"seed {seed}: {ops.Count} operations on one user, {clients} clients, spans up to {2 * maxSpan}: {report.Linearizability.Elapsed.TotalMilliseconds:F0} ms, {report.Linearizability.Partitions.Sum(p => p.StatesExplored)} states");
        Assert.True(report.Passed, $"seed {seed}: {report}");
    }

    [Theory]
    [InlineData(15, 10, 30)]
    [InlineData(16, 10, 30)]
    [InlineData(17, 10, 30)]
    [InlineData(18, 8, 40)]
    [InlineData(19, 12, 40)]
    public void LargeSingleUserHistoryWithHighConcurrencyAndALostUpdate_IsRejected(int seed, int clients, int maxSpan)
    {
        var rng = new Random(seed);
        var ops = RandomHistories.Vault(rng, clients, keys: 1, opsPerClient: 1200 / clients, pendingRate: 0.02, maxSpan, fewResets: true);
        var corruption = RandomHistories.CorruptWithLostUpdate(ops, rng);
        Assert.NotNull(corruption);

        var result = LinearizabilityChecker.Check(new VaultModel(), ops, Budget);

        output.WriteLine($"seed {seed}: {corruption}: {result.Outcome} in {result.Elapsed.TotalMilliseconds:F0} ms, {result.Partitions.Sum(p => p.StatesExplored)} states");
        Assert.True(result.Outcome == CheckOutcome.NotLinearizable, $"seed {seed}: {corruption}: {result}");
    }

    [Theory]
    [InlineData(21)]
    [InlineData(22)]
    [InlineData(23)]
    [InlineData(24)]
    [InlineData(25)]
    public void LargeHistoryWithALostUpdate_IsRejected(int seed)
    {
        var rng = new Random(seed);
        var ops = RandomHistories.Vault(rng, clients: 8, keys: 4, opsPerClient: 150, pendingRate: 0.03);
        var corruption = RandomHistories.CorruptWithLostUpdate(ops, rng);
        Assert.NotNull(corruption);

        var result = LinearizabilityChecker.Check(new VaultModel(), ops, Budget);

        output.WriteLine($"seed {seed}: {corruption}: {result.Outcome} in {result.Elapsed.TotalMilliseconds:F0} ms");
        Assert.True(result.Outcome == CheckOutcome.NotLinearizable, $"seed {seed}: {corruption}: {result}");
    }

    [Theory]
    [InlineData(31)]
    [InlineData(32)]
    [InlineData(33)]
    public void LargeHistoryWithAnImpossibleCount_IsRejected(int seed)
    {
        var rng = new Random(seed);
        var ops = RandomHistories.Vault(rng, clients: 8, keys: 4, opsPerClient: 150, pendingRate: 0.03);
        var corruption = RandomHistories.CorruptWithImpossibleCount(ops, rng);
        Assert.NotNull(corruption);

        var result = LinearizabilityChecker.Check(new VaultModel(), ops, Budget);

        output.WriteLine($"seed {seed}: {corruption}: {result.Outcome} in {result.Elapsed.TotalMilliseconds:F0} ms");
        Assert.True(result.Outcome == CheckOutcome.NotLinearizable, $"seed {seed}: {corruption}: {result}");
    }

    [Fact]
    public void SmallRandomRegisterHistories_AgreeWithBruteForce()
    {
        var verdicts = new Dictionary<bool, int> { [true] = 0, [false] = 0 };
        for (var seed = 0; seed < 400; seed++)
        {
            var ops = RandomRegisterHistory(new Random(seed));
            var expected = BruteForce.IsLinearizable(new RegisterModel(), ops);

            var actual = LinearizabilityChecker.Check(new RegisterModel(), ops, Budget).Outcome;

            Assert.True(
                actual == (expected ? CheckOutcome.Linearizable : CheckOutcome.NotLinearizable),
                $"seed {seed}: brute force says {expected}, checker {actual}:{Environment.NewLine}{string.Join(Environment.NewLine, ops)}");
            verdicts[expected]++;
        }

        // Both verdicts must be well represented, or the comparison proves little.
        output.WriteLine($"linearizable {verdicts[true]}, not {verdicts[false]}");
        Assert.True(verdicts[true] > 50 && verdicts[false] > 50, $"linearizable {verdicts[true]}, not {verdicts[false]}");
    }

    [Fact]
    public void SmallRandomVaultHistories_WithRandomCorruption_AgreeWithBruteForce()
    {
        var verdicts = new Dictionary<bool, int> { [true] = 0, [false] = 0 };
        for (var seed = 0; seed < 400; seed++)
        {
            var rng = new Random(seed);
            var ops = RandomHistories.Vault(rng, clients: 3, keys: 1, opsPerClient: 3, pendingRate: 0.15, maxSpan: 4);
            if (rng.Next(2) == 0)
            {
                var victim = rng.Next(ops.Count);
                ops[victim] = ops[victim] with { Output = RandomOutput(rng), Return = Math.Min(ops[victim].Return, ops[victim].Call + 3) };
            }

            var expected = BruteForce.IsLinearizable(new VaultModel(), ops);

            var actual = LinearizabilityChecker.Check(new VaultModel(), ops, Budget).Outcome;

            Assert.True(
                actual == (expected ? CheckOutcome.Linearizable : CheckOutcome.NotLinearizable),
                $"seed {seed}: brute force says {expected}, checker {actual}:{Environment.NewLine}{string.Join(Environment.NewLine, ops)}");
            verdicts[expected]++;
        }

        output.WriteLine($"linearizable {verdicts[true]}, not {verdicts[false]}");
        Assert.True(verdicts[true] > 50 && verdicts[false] > 50, $"linearizable {verdicts[true]}, not {verdicts[false]}");
    }

    private static List<Operation<RegisterInput, int>> RandomRegisterHistory(Random rng)
    {
        var ops = new List<Operation<RegisterInput, int>>();
        for (var client = 0; client < 3; client++)
        {
            long now = rng.Next(4);
            for (var i = 0; i < 2 + rng.Next(2); i++)
            {
                var call = now + rng.Next(3);
                var ret = call + 1 + rng.Next(6);
                var input = rng.Next(2) == 0 ? RegisterInput.Read : RegisterInput.Write(1 + rng.Next(2));
                ops.Add(!input.IsRead && rng.Next(5) == 0
                    ? Operation.Pending<RegisterInput, int>(client, input, call)
                    : Operation.Completed(client, input, call, input.IsRead ? rng.Next(3) : 0, ret));
                now = ret + 1;
            }
        }

        return ops;
    }

    private static VaultOutput RandomOutput(Random rng) => rng.Next(8) switch
    {
        0 => V.Registered,
        1 => V.AlreadyRegistered,
        2 => V.Charged(rng.Next(5)),
        3 => V.Destroyed,
        4 => V.WrongPassword(rng.Next(5)),
        5 => V.Success,
        6 => V.StatusOf(true, rng.Next(5), false),
        _ => V.NotRegistered,
    };
}
