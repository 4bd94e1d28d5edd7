using HsmVault.Testing.Linearizability;

namespace HsmVault.Linearizability.Tests;

public sealed class VaultModelTests
{
    private static VaultScript Registered(int limit, string key = "alice") =>
        new VaultScript().Then(V.Register(limit), V.Registered, key);

    [Fact]
    public void SequentialHistoryOfEveryOperation_IsAccepted()
    {
        var script = Registered(3)
            .Then(V.Register(3), V.AlreadyRegistered)
            .Then(V.Start, V.Charged(2))
            .Then(V.Finish(false), V.WrongPassword(2))
            .Then(V.Start, V.Charged(1))
            .Then(V.Finish(true), V.Success)
            .Then(V.Status, V.StatusOf(true, 3, false))
            .Then(V.Start, V.Charged(2))
            .Then(V.Start, V.Charged(1))
            .Then(V.Start, V.Charged(0))
            .Then(V.Start, V.Destroyed)
            .Then(V.Status, V.StatusOf(false, 0, true))
            .Then(V.Finish(true), V.Destroyed)
            .Then(V.Register(5), V.Registered)
            .Then(V.Register(4, replace: true), V.Registered)
            .Then(V.Status, V.StatusOf(true, 4, false))
            .Then(V.Finish(true), V.SessionInvalid)
            .Then(V.Delete, V.Deleted)
            .Then(V.Delete, V.NotFound)
            .Then(V.Start, V.NotRegistered)
            .Then(V.Finish(true), V.SessionInvalid)
            .Then(V.Status, V.StatusOf(false, 0, false));

        var report = script.Verify();

        Assert.True(report.Passed, report.ToString());
    }

    [Fact]
    public void LastGuessWrong_DestroysRecord()
    {
        var script = Registered(1)
            .Then(V.Start, V.Charged(0))
            .Then(V.Finish(false), V.Destroyed)
            .Then(V.Start, V.Destroyed);

        Assert.Equal(CheckOutcome.Linearizable, script.Model());
    }

    [Fact]
    public void ElevenChargesOnALimitOfTen_AreRejectedByTheModelAndTheGuessBudget()
    {
        var script = Registered(10).Concurrently(
            "alice",
            [.. Enumerable.Range(0, 11).Select(i => (V.Start, (VaultOutput?)V.Charged(Math.Max(0, 9 - i))))]);

        var report = script.Verify();

        Assert.Equal(CheckOutcome.NotLinearizable, report.Linearizability.Outcome);
        var violation = Assert.Single(report.Budget.Violations);
        Assert.Equal((11, 10, "alice"), (violation.Charged, violation.Limit, violation.Key));
    }

    [Fact]
    public void TenChargesThenDestroyed_IsAccepted()
    {
        var script = Registered(10).Concurrently(
            "alice",
            [.. Enumerable.Range(0, 10).Select(i => (V.Start, (VaultOutput?)V.Charged(i)))]);
        script.Then(V.Start, V.Destroyed).Then(V.Status, V.StatusOf(false, 0, true));

        var report = script.Verify();

        Assert.True(report.Passed, report.ToString());
    }

    [Fact]
    public void TwoConcurrentStartsBothLeavingNine_ALostUpdate_IsRejected()
    {
        var script = Registered(10).Concurrently("alice", (V.Start, V.Charged(9)), (V.Start, V.Charged(9)));

        var report = script.Verify();

        Assert.Equal(CheckOutcome.NotLinearizable, report.Linearizability.Outcome);

        // Two charges are within the budget: only the model sees that one of them was lost.
        Assert.True(report.Budget.Ok, report.Budget.ToString());
    }

    [Fact]
    public void TwoConcurrentStartsLeavingNineAndEight_AreAccepted()
    {
        var script = Registered(10).Concurrently("alice", (V.Start, V.Charged(8)), (V.Start, V.Charged(9)));

        Assert.Equal(CheckOutcome.Linearizable, script.Model());
    }

    [Fact]
    public void StatusShowingTheOldCountAfterACompletedCharge_AStaleRead_IsRejected()
    {
        var script = Registered(10)
            .Then(V.Start, V.Charged(9), client: 1)
            .Then(V.Status, V.StatusOf(true, 10, false), client: 2);

        Assert.Equal(CheckOutcome.NotLinearizable, script.Model());
    }

    [Fact]
    public void StatusConcurrentWithACharge_MaySeeEitherCount()
    {
        var before = Registered(10).Concurrently("alice", (V.Start, V.Charged(9)), (V.Status, V.StatusOf(true, 10, false)));
        var after = Registered(10).Concurrently("alice", (V.Start, V.Charged(9)), (V.Status, V.StatusOf(true, 9, false)));

        Assert.Equal(CheckOutcome.Linearizable, before.Model());
        Assert.Equal(CheckOutcome.Linearizable, after.Model());
    }

    [Fact]
    public void PendingStart_MayOrMayNotHaveCharged_ButCannotBeUndone()
    {
        VaultScript Script(params int[] remaining)
        {
            var script = Registered(10).Concurrently("alice", (V.Start, null));
            foreach (var r in remaining)
            {
                script.Then(V.Status, V.StatusOf(true, r, false));
            }

            return script;
        }

        Assert.Equal(CheckOutcome.Linearizable, Script(10, 10).Model());
        Assert.Equal(CheckOutcome.Linearizable, Script(10, 9).Model());
        Assert.Equal(CheckOutcome.NotLinearizable, Script(9, 10).Model());
        Assert.Equal(CheckOutcome.NotLinearizable, Script(8).Model());
    }

    [Fact]
    public void PendingStartAtTheLimit_MayHaveDestroyedTheRecord()
    {
        var script = Registered(1)
            .Then(V.Start, V.Charged(0))
            .Concurrently("alice", (V.Start, null))
            .Then(V.Status, V.StatusOf(false, 0, true));

        Assert.Equal(CheckOutcome.Linearizable, script.Model());
    }

    [Fact]
    public void SuccessOnADestroyedRecord_IsRejected()
    {
        var script = Registered(1)
            .Then(V.Start, V.Charged(0))
            .Then(V.Start, V.Destroyed)
            .Then(V.Finish(true), V.Success);

        Assert.Equal(CheckOutcome.NotLinearizable, script.Model());
    }

    [Fact]
    public void WrongPasswordReportingMoreGuessesThanLeft_IsRejected()
    {
        var script = Registered(5)
            .Then(V.Start, V.Charged(4))
            .Then(V.Finish(false), V.WrongPassword(5));

        Assert.Equal(CheckOutcome.NotLinearizable, script.Model());
    }

    [Fact]
    public void AlreadyRegisteredWhenNothingWasRegistered_IsRejected()
    {
        var script = new VaultScript().Then(V.Register(3), V.AlreadyRegistered);

        Assert.Equal(CheckOutcome.NotLinearizable, script.Model());
    }

    [Fact]
    public void ReplacingARegistration_ResetsTheGuesses()
    {
        var script = Registered(3)
            .Then(V.Start, V.Charged(2))
            .Then(V.Start, V.Charged(1))
            .Then(V.Register(3, replace: true), V.Registered)
            .Then(V.Start, V.Charged(2));

        var report = script.Verify();

        Assert.True(report.Passed, report.ToString());
    }

    [Fact]
    public void UsersAreCheckedIndependently_AndAViolationNamesItsUser()
    {
        // Interleaved in time, alice and bob share nothing: bob's status is unaffected by alice.
        var script = new VaultScript()
            .Then(V.Register(3), V.Registered, "alice")
            .Then(V.Status, V.StatusOf(false, 0, false), "bob")
            .Then(V.Start, V.Charged(2), "alice")
            .Then(V.Register(2), V.Registered, "bob")
            .Then(V.Start, V.Charged(1), "bob")
            .Then(V.Status, V.StatusOf(true, 2, false), "alice")
            .Then(V.Start, V.Charged(1), "bob")
            .Then(V.Status, V.StatusOf(true, 2, false), "carol");

        var result = LinearizabilityChecker.Check(new VaultModel(), script.Ops, TimeSpan.FromSeconds(10));

        Assert.Equal(["alice", "bob", "carol"], result.Partitions.Select(p => p.Key));
        Assert.Equal(
            [CheckOutcome.Linearizable, CheckOutcome.NotLinearizable, CheckOutcome.NotLinearizable],
            result.Partitions.Select(p => p.Outcome));
        Assert.Equal(CheckOutcome.NotLinearizable, result.Outcome);
        Assert.Contains("key 'bob'", result.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("key 'alice'", result.ToString(), StringComparison.Ordinal);
    }

    // Attempts 1 and 2 are charged; 2 resets; 3 is charged; then the late correct finish of 1 and a
    // status read: RecordTransitions resets once per attempt, never for an older one.
    private static VaultScript LateFinishOfAnOlderAttempt(int statusRemaining) => Registered(5)
        .Then(V.StartOf(1), V.Charged(4))
        .Then(V.StartOf(2), V.Charged(3))
        .Then(V.FinishOf(2, correct: true), V.Success)
        .Then(V.StartOf(3), V.Charged(4))
        .Then(V.FinishOf(1, correct: true), V.Success)
        .Then(V.Status, V.StatusOf(true, statusRemaining, false));

    [Fact]
    public void CorrectFinishOfAnAttemptOlderThanTheLastReset_ChangesNothing() =>
        Assert.Equal(CheckOutcome.Linearizable, LateFinishOfAnOlderAttempt(statusRemaining: 4).Model());

    [Fact]
    public void CorrectFinishOfAnOlderAttempt_ThatRefundsANewerCharge_IsRejected() =>
        Assert.Equal(CheckOutcome.NotLinearizable, LateFinishOfAnOlderAttempt(statusRemaining: 5).Model());

    [Fact]
    public void CorrectFinishOfTheNewestAttempt_MustReset()
    {
        var script = Registered(5)
            .Then(V.StartOf(1), V.Charged(4))
            .Then(V.StartOf(2), V.Charged(3))
            .Then(V.FinishOf(1, correct: true), V.Success)
            .Then(V.FinishOf(2, correct: true), V.Success)
            .Then(V.Start, V.Charged(4))
            .Then(V.Status, V.StatusOf(true, 4, false));

        Assert.Equal(CheckOutcome.Linearizable, script.Model());
        Assert.Equal(CheckOutcome.NotLinearizable, Registered(5)
            .Then(V.StartOf(1), V.Charged(4))
            .Then(V.FinishOf(1, correct: true), V.Success)
            .Then(V.Status, V.StatusOf(true, 4, false))
            .Model());
    }

    [Fact]
    public void CorrectFinishOfAnAttemptOnAReplacedRegistration_RefundsNothingOnTheNewOne()
    {
        var stale = Registered(5)
            .Then(V.StartOf(1), V.Charged(4))
            .Then(V.Register(5, replace: true), V.Registered)
            .Then(V.StartOf(2), V.Charged(4))
            .Then(V.FinishOf(1, correct: true), V.Success)
            .Then(V.Status, V.StatusOf(true, 5, false));

        Assert.Equal(CheckOutcome.NotLinearizable, stale.Model());
    }
}
