using HsmVault.Testing.Linearizability;

namespace HsmVault.Linearizability.Tests;

/// <summary>A read or a write of a single integer register (Porcupine's register model).</summary>
public sealed record RegisterInput(bool IsRead, int Value)
{
    public static RegisterInput Read { get; } = new(true, 0);

    public static RegisterInput Write(int value) => new(false, value);
}

/// <summary>An integer register that starts at 0; a read answers the value, a write answers 0.</summary>
public sealed class RegisterModel : IModel<int, RegisterInput, int>
{
    public int Init() => 0;

    public (bool Ok, int State) Step(int state, RegisterInput input, int output) =>
        input.IsRead ? (output == state, state) : (true, input.Value);

    public IReadOnlyList<int> StepUnknown(int state, RegisterInput input) => [input.IsRead ? state : input.Value];

    public bool IsReadOnly(RegisterInput input, int output) => input.IsRead;
}

/// <summary>The contents of a FIFO queue, with value equality.</summary>
public sealed record QueueState(IReadOnlyList<int> Items)
{
    public bool Equals(QueueState? other) => other is not null && Items.SequenceEqual(other.Items);

    public override int GetHashCode() => Items.Aggregate(17, (h, x) => (h * 31) + x);

    public override string ToString() => "[" + string.Join(", ", Items) + "]";
}

/// <summary>Enqueue a value, or dequeue (Value ignored).</summary>
public sealed record QueueInput(bool IsEnqueue, int Value)
{
    public static QueueInput Dequeue { get; } = new(false, 0);

    public static QueueInput Enqueue(int value) => new(true, value);
}

/// <summary>A FIFO queue (Herlihy &amp; Wing 1990's running example): a dequeue answers the head, or null when empty.</summary>
public sealed class QueueModel : IModel<QueueState, QueueInput, int?>
{
    public QueueState Init() => new([]);

    public (bool Ok, QueueState State) Step(QueueState state, QueueInput input, int? output)
    {
        if (input.IsEnqueue)
        {
            return (true, new QueueState([.. state.Items, input.Value]));
        }

        return state.Items.Count == 0
            ? (output is null, state)
            : (output == state.Items[0], new QueueState([.. state.Items.Skip(1)]));
    }

    public bool IsReadOnly(QueueInput input, int? output) => !input.IsEnqueue && output is null;

    public IReadOnlyList<QueueState> StepUnknown(QueueState state, QueueInput input) =>
        input.IsEnqueue ? [new QueueState([.. state.Items, input.Value])]
        : state.Items.Count == 0 ? [state]
        : [new QueueState([.. state.Items.Skip(1)])];
}

/// <summary>
/// An independent, exhaustive oracle: tries every order consistent with real time (with pending
/// operations in or out), with no memoization and no event list. Only for a handful of operations.
/// </summary>
public static class BruteForce
{
    public static bool IsLinearizable<TState, TInput, TOutput>(
        IModel<TState, TInput, TOutput> model, IReadOnlyList<Operation<TInput, TOutput>> ops)
    {
        return model.Partition(ops).All(part => Search(model, part, new bool[part.Count], model.Init()));
    }

    private static bool Search<TState, TInput, TOutput>(
        IModel<TState, TInput, TOutput> model, IReadOnlyList<Operation<TInput, TOutput>> ops, bool[] done, TState state)
    {
        var left = Enumerable.Range(0, ops.Count).Where(i => !done[i]).ToList();
        if (left.All(i => ops[i].IsPending))
        {
            return true;
        }

        foreach (var i in left)
        {
            // i may go next unless some other unplaced operation returned strictly before i was called.
            if (left.Any(j => j != i && !ops[j].IsPending && ops[j].Return < ops[i].Call))
            {
                continue;
            }

            IReadOnlyList<TState> next;
            if (ops[i].IsPending)
            {
                next = model.StepUnknown(state, ops[i].Input);
            }
            else
            {
                var (ok, s) = model.Step(state, ops[i].Input, ops[i].Output!);
                next = ok ? [s] : [];
            }

            foreach (var s in next)
            {
                done[i] = true;
                var found = Search(model, ops, done, s);
                done[i] = false;
                if (found)
                {
                    return true;
                }
            }
        }

        return false;
    }
}
