using HsmVault.Testing.Linearizability;

namespace HsmVault.Linearizability.Tests;

public sealed class GuessBudgetTests
{
    private static Operation<VaultInput, VaultOutput> Op(VaultInput input, long call, VaultOutput output, long ret, string key = "alice") =>
        Operation.Completed(0, input, call, output, ret, key);

    [Fact]
    public void ChargesSeparatedBySuccessfulRecoveries_AreCountedPerEpoch()
    {
        var script = new VaultScript()
            .Then(V.Register(2), V.Registered)
            .Then(V.Start, V.Charged(1))
            .Then(V.Start, V.Charged(0))
            .Then(V.Finish(true), V.Success)
            .Then(V.Start, V.Charged(1))
            .Then(V.Start, V.Charged(0));

        Assert.True(GuessBudget.Check(script.Ops).Ok);
    }

    [Fact]
    public void ChargesSeparatedOnlyByWrongPasswords_AreCountedTogether()
    {
        var script = new VaultScript()
            .Then(V.Register(2), V.Registered)
            .Then(V.Start, V.Charged(1))
            .Then(V.Finish(false), V.WrongPassword(1))
            .Then(V.Start, V.Charged(0))
            .Then(V.Finish(false), V.WrongPassword(0))
            .Then(V.Start, V.Charged(0));

        var violation = Assert.Single(GuessBudget.Check(script.Ops).Violations);
        Assert.Equal((3, 2), (violation.Charged, violation.Limit));
    }

    [Fact]
    public void ChargesOverlappingAReset_MayBelongToEitherEpoch_AndAreNotCounted()
    {
        // Two charges run across the success, so each may have landed before or after it.
        var ops = new[]
        {
            Op(V.Register(2), 0, V.Registered, 1),
            Op(V.Start, 2, V.Charged(1), 3),
            Op(V.Start, 4, V.Charged(0), 5),
            Op(V.Finish(true), 6, V.Success, 10),
            Op(V.Start, 7, V.Charged(1), 12),
            Op(V.Start, 8, V.Charged(0), 13),
        };

        Assert.True(GuessBudget.Check(ops).Ok);
    }

    [Fact]
    public void APendingCorrectFinish_MayHaveResetTheCounterAtAnyLaterTime()
    {
        var ops = new[]
        {
            Op(V.Register(1), 0, V.Registered, 1),
            Op(V.Start, 2, V.Charged(0), 3),
            Operation.Pending<VaultInput, VaultOutput>(1, V.Finish(true), 4, "alice"),
            Op(V.Start, 6, V.Charged(0), 7),
        };

        Assert.True(GuessBudget.Check(ops).Ok);
        Assert.Equal(CheckOutcome.Linearizable, LinearizabilityChecker.Check(new VaultModel(), ops, TimeSpan.FromSeconds(10)).Outcome);
    }

    [Fact]
    public void AChargeWithoutAnyRegistration_ExceedsAZeroBudget()
    {
        var ops = new[] { Op(V.Start, 0, V.Charged(3), 1) };

        var violation = Assert.Single(GuessBudget.Check(ops).Violations);
        Assert.Equal((1, 0), (violation.Charged, violation.Limit));
    }

    [Fact]
    public void Users_HaveTheirOwnBudgets()
    {
        var script = new VaultScript()
            .Then(V.Register(1), V.Registered, "alice")
            .Then(V.Register(1), V.Registered, "bob")
            .Then(V.Start, V.Charged(0), "alice")
            .Then(V.Start, V.Charged(0), "bob")
            .Then(V.Start, V.Charged(0), "bob");

        var violation = Assert.Single(GuessBudget.Check(script.Ops).Violations);
        Assert.Equal("bob", violation.Key);
        Assert.Contains("key 'bob': 2 guesses charged with limit 1", violation.ToString(), StringComparison.Ordinal);
    }
}
