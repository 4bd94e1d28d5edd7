using HsmVault.Testing.Linearizability;

namespace HsmVault.Linearizability.Tests;

public sealed class CheckerTests
{
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(10);

    private static Operation<RegisterInput, int> Op(int client, RegisterInput input, long call, int output, long ret) =>
        Operation.Completed(client, input, call, output, ret);

    private static Operation<RegisterInput, int> Pending(int client, RegisterInput input, long call) =>
        Operation.Pending<RegisterInput, int>(client, input, call);

    private static Operation<QueueInput, int?> Q(int client, QueueInput input, long call, int? output, long ret) =>
        Operation.Completed(client, input, call, output, ret);

    private static CheckOutcome Check(params Operation<RegisterInput, int>[] ops) =>
        LinearizabilityChecker.Check(new RegisterModel(), ops, Budget).Outcome;

    private static CheckOutcome CheckQueue(params Operation<QueueInput, int?>[] ops) =>
        LinearizabilityChecker.Check(new QueueModel(), ops, Budget).Outcome;

    [Fact]
    public void Register_PorcupineExampleWithReadsAroundAWrite_IsLinearizable()
    {
        // porcupine_test.go, TestRegisterModel: the read of 0 goes before the write, the read of 100 after.
        Assert.Equal(CheckOutcome.Linearizable, Check(
            Op(0, RegisterInput.Write(100), 0, 0, 100),
            Op(1, RegisterInput.Read, 25, 100, 75),
            Op(2, RegisterInput.Read, 30, 0, 60)));
    }

    [Fact]
    public void Register_PorcupineExampleWithReadOfOldValueAfterNewValueWasRead_IsNotLinearizable()
    {
        // porcupine_test.go: 200 was read at [10,30], so the write took effect by 30; a read called at 40 cannot see 0.
        Assert.Equal(CheckOutcome.NotLinearizable, Check(
            Op(0, RegisterInput.Write(200), 0, 0, 100),
            Op(1, RegisterInput.Read, 10, 200, 30),
            Op(2, RegisterInput.Read, 40, 0, 90)));
    }

    [Fact]
    public void Register_ConcurrentWritesObservedInEitherOrderWhileInFlight_IsLinearizable()
    {
        Assert.Equal(CheckOutcome.Linearizable, Check(
            Op(0, RegisterInput.Write(1), 0, 0, 10),
            Op(1, RegisterInput.Write(2), 0, 0, 10),
            Op(2, RegisterInput.Read, 2, 2, 4),
            Op(3, RegisterInput.Read, 5, 1, 7)));
    }

    [Fact]
    public void Register_ValuesFlipAfterBothWritesCompleted_IsNotLinearizable()
    {
        Assert.Equal(CheckOutcome.NotLinearizable, Check(
            Op(0, RegisterInput.Write(1), 0, 0, 10),
            Op(1, RegisterInput.Write(2), 0, 0, 10),
            Op(2, RegisterInput.Read, 11, 2, 12),
            Op(3, RegisterInput.Read, 13, 1, 14)));
    }

    [Fact]
    public void Register_StaleReadAfterCompletedWrite_IsNotLinearizable()
    {
        Assert.Equal(CheckOutcome.NotLinearizable, Check(
            Op(0, RegisterInput.Write(5), 0, 0, 3),
            Op(1, RegisterInput.Read, 4, 0, 6)));
    }

    [Fact]
    public void Register_OperationsThatOnlyTouch_AreTreatedAsConcurrent()
    {
        // Equal timestamps give no real-time order (Porcupine sorts calls before returns on ties).
        Assert.Equal(CheckOutcome.Linearizable, Check(
            Op(0, RegisterInput.Write(5), 0, 0, 3),
            Op(1, RegisterInput.Read, 3, 0, 6)));
    }

    [Fact]
    public void Register_ReadOfValueNeverWritten_IsNotLinearizable()
    {
        Assert.Equal(CheckOutcome.NotLinearizable, Check(
            Op(0, RegisterInput.Write(1), 0, 0, 10),
            Op(1, RegisterInput.Read, 0, 7, 10)));
    }

    [Fact]
    public void EmptyHistory_IsLinearizable()
    {
        Assert.Equal(CheckOutcome.Linearizable, Check());
    }

    [Fact]
    public void Queue_OverlappingEnqueuesDequeuedInEitherOrder_IsLinearizable()
    {
        // Herlihy & Wing 1990, Fig. 1: concurrent enqueues may take effect in either order.
        Assert.Equal(CheckOutcome.Linearizable, CheckQueue(
            Q(0, QueueInput.Enqueue(1), 0, null, 4),
            Q(1, QueueInput.Enqueue(2), 2, null, 6),
            Q(0, QueueInput.Dequeue, 7, 2, 9),
            Q(1, QueueInput.Dequeue, 10, 1, 12)));
    }

    [Fact]
    public void Queue_SequentialEnqueuesDequeuedOutOfOrder_IsNotLinearizable()
    {
        Assert.Equal(CheckOutcome.NotLinearizable, CheckQueue(
            Q(0, QueueInput.Enqueue(1), 0, null, 2),
            Q(1, QueueInput.Enqueue(2), 3, null, 5),
            Q(0, QueueInput.Dequeue, 6, 2, 8)));
    }

    [Fact]
    public void Queue_DequeueReturnsBeforeItsEnqueueReturns_IsLinearizable()
    {
        Assert.Equal(CheckOutcome.Linearizable, CheckQueue(
            Q(0, QueueInput.Enqueue(1), 0, null, 10),
            Q(1, QueueInput.Dequeue, 1, 1, 3)));
    }

    [Fact]
    public void Queue_DequeueOfValueEnqueuedOnlyLater_IsNotLinearizable()
    {
        Assert.Equal(CheckOutcome.NotLinearizable, CheckQueue(
            Q(1, QueueInput.Dequeue, 1, 1, 3),
            Q(0, QueueInput.Enqueue(1), 4, null, 10)));
    }

    [Fact]
    public void Queue_EmptyDequeueAfterCompletedEnqueue_IsNotLinearizable()
    {
        Assert.Equal(CheckOutcome.NotLinearizable, CheckQueue(
            Q(0, QueueInput.Enqueue(1), 0, null, 2),
            Q(1, QueueInput.Dequeue, 3, null, 5)));
    }

    [Fact]
    public void Pending_WriteObservedByLaterRead_IsLinearizable()
    {
        Assert.Equal(CheckOutcome.Linearizable, Check(
            Pending(0, RegisterInput.Write(1), 0),
            Op(1, RegisterInput.Read, 5, 1, 6)));
    }

    [Fact]
    public void Pending_WriteNeverObserved_IsLinearizable()
    {
        // A time-out may mean the write never happened.
        Assert.Equal(CheckOutcome.Linearizable, Check(
            Pending(0, RegisterInput.Write(1), 0),
            Op(1, RegisterInput.Read, 5, 0, 6),
            Op(1, RegisterInput.Read, 7, 0, 8)));
    }

    [Fact]
    public void Pending_WriteObservedBeforeItWasCalled_IsNotLinearizable()
    {
        Assert.Equal(CheckOutcome.NotLinearizable, Check(
            Op(1, RegisterInput.Read, 0, 1, 5),
            Pending(0, RegisterInput.Write(1), 10)));
    }

    [Fact]
    public void Pending_WriteObservedAndThenUnobserved_IsNotLinearizable()
    {
        // Once a pending write is seen it has happened; it cannot be undone later.
        Assert.Equal(CheckOutcome.NotLinearizable, Check(
            Pending(0, RegisterInput.Write(1), 0),
            Op(1, RegisterInput.Read, 5, 1, 6),
            Op(1, RegisterInput.Read, 7, 0, 8)));
    }

    [Fact]
    public void Pending_TwoWritesObservedInReverseCallOrder_IsLinearizable()
    {
        Assert.Equal(CheckOutcome.Linearizable, Check(
            Pending(0, RegisterInput.Write(1), 0),
            Pending(1, RegisterInput.Write(2), 1),
            Op(2, RegisterInput.Read, 5, 2, 6),
            Op(2, RegisterInput.Read, 7, 1, 8)));
    }

    [Fact]
    public void NotLinearizable_ReportsLongestPrefixAndTheOperationsThatCouldNotBePlaced()
    {
        var result = LinearizabilityChecker.Check(new RegisterModel(), [
            Op(0, RegisterInput.Write(5), 0, 0, 3),
            Op(1, RegisterInput.Read, 4, 5, 6),
            Op(1, RegisterInput.Read, 7, 4, 8),
        ], Budget);

        Assert.Equal(CheckOutcome.NotLinearizable, result.Outcome);
        var part = Assert.Single(result.Partitions);
        Assert.Equal(2, part.LongestPrefix.Count);
        Assert.Equal("5", part.StateAfterPrefix);
        var (unplaced, reason) = Assert.Single(part.Unplaced);
        Assert.Equal(4, unplaced.Output);
        Assert.Contains("cannot give this answer", reason, StringComparison.Ordinal);
        Assert.Contains("[7, 8]", result.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Linearizable_ReturnsAWitnessOrderConsistentWithTheModel()
    {
        var result = LinearizabilityChecker.Check(new RegisterModel(), [
            Op(0, RegisterInput.Write(100), 0, 0, 100),
            Op(1, RegisterInput.Read, 25, 100, 75),
            Op(2, RegisterInput.Read, 30, 0, 60),
        ], Budget);

        var order = Assert.Single(result.Partitions).LongestPrefix;
        Assert.Equal([0, 100, 100], order.Select(op => op.IsPending ? -1 : op.Input.IsRead ? op.Output : op.Input.Value));
    }

    [Fact]
    public void ExhaustingTheTimeBudget_GivesUnknown()
    {
        // 40 fully concurrent writes and then a read of a value nobody wrote: every subset of the
        // writes is a distinct search node, so the search is exponential (2^40) before it can fail.
        var ops = Enumerable.Range(1, 40).Select(v => Op(v, RegisterInput.Write(v), 0, 0, 100)).ToList();
        ops.Add(Op(0, RegisterInput.Read, 200, 999, 201));

        var result = LinearizabilityChecker.Check(new RegisterModel(), ops, TimeSpan.FromMilliseconds(200));

        Assert.Equal(CheckOutcome.Unknown, result.Outcome);
        Assert.True(result.Elapsed < TimeSpan.FromSeconds(5), $"took {result.Elapsed}");
    }

    [Fact]
    public void Cancellation_GivesUnknown()
    {
        var ops = Enumerable.Range(1, 40).Select(v => Op(v, RegisterInput.Write(v), 0, 0, 100)).ToList();
        ops.Add(Op(0, RegisterInput.Read, 200, 999, 201));
        using var cancellation = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));

        var result = LinearizabilityChecker.Check(new RegisterModel(), ops, TimeSpan.FromHours(1), cancellation.Token);

        Assert.Equal(CheckOutcome.Unknown, result.Outcome);
    }

    [Fact]
    public void ManyRoundsOfConcurrentWritesEndingInAnImpossibleRead_AreRejectedQuicklyThanksToMemoization()
    {
        // 60 rounds of 3 concurrent writes: 6^60 orders to refute without Lowe's cache, but at
        // the end of each round only 3 (placed set, state) nodes exist, so the search is tiny.
        var ops = new List<Operation<RegisterInput, int>>();
        for (var round = 0; round < 60; round++)
        {
            for (var w = 1; w <= 3; w++)
            {
                ops.Add(Op(w, RegisterInput.Write((round * 3) + w), round * 10, 0, (round * 10) + 5));
            }
        }

        ops.Add(Op(0, RegisterInput.Read, 1000, 999, 1001));

        var result = LinearizabilityChecker.Check(new RegisterModel(), ops, Budget);

        Assert.Equal(CheckOutcome.NotLinearizable, result.Outcome);
        Assert.True(result.Elapsed < TimeSpan.FromSeconds(2), $"took {result.Elapsed}");
        Assert.True(result.Partitions[0].StatesExplored < 10_000, $"{result.Partitions[0].StatesExplored} states");
    }
}
