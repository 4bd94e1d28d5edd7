using System.Globalization;
using System.Text;

namespace HsmVault.Testing.Linearizability;

/// <summary>The verdict of a linearizability check.</summary>
public enum CheckOutcome
{
    /// <summary>Some order of the operations consistent with real time satisfies the model.</summary>
    Linearizable,

    /// <summary>No such order exists: the history is a counterexample.</summary>
    NotLinearizable,

    /// <summary>The time budget ran out (or the check was cancelled) before a verdict.</summary>
    Unknown,
}

/// <summary>The verdict for one independent sub-history (one key).</summary>
/// <typeparam name="TInput">What a client asks.</typeparam>
/// <typeparam name="TOutput">What a client is answered.</typeparam>
public sealed class PartitionResult<TInput, TOutput>
{
    internal PartitionResult(
        string key,
        CheckOutcome outcome,
        IReadOnlyList<Operation<TInput, TOutput>> operations,
        IReadOnlyList<Operation<TInput, TOutput>> longestPrefix,
        string stateAfterPrefix,
        IReadOnlyList<(Operation<TInput, TOutput> Operation, string Reason)> unplaced,
        long statesExplored)
    {
        Key = key;
        Outcome = outcome;
        Operations = operations;
        LongestPrefix = longestPrefix;
        StateAfterPrefix = stateAfterPrefix;
        Unplaced = unplaced;
        StatesExplored = statesExplored;
    }

    /// <summary>The key of the sub-history (the first operation's key).</summary>
    public string Key { get; }

    /// <summary>The verdict for this sub-history.</summary>
    public CheckOutcome Outcome { get; }

    /// <summary>The operations of the sub-history.</summary>
    public IReadOnlyList<Operation<TInput, TOutput>> Operations { get; }

    /// <summary>
    /// When linearizable, a witness linearization (pending operations that took effect included);
    /// otherwise the longest prefix of some linearization the search found.
    /// </summary>
    public IReadOnlyList<Operation<TInput, TOutput>> LongestPrefix { get; }

    /// <summary>The model state after <see cref="LongestPrefix"/>.</summary>
    public string StateAfterPrefix { get; }

    /// <summary>
    /// When not linearizable, the operations that could have come next after
    /// <see cref="LongestPrefix"/> by real time, none of which fits.
    /// </summary>
    public IReadOnlyList<(Operation<TInput, TOutput> Operation, string Reason)> Unplaced { get; }

    /// <summary>How many (linearized set, state) pairs the search memoized.</summary>
    public long StatesExplored { get; }
}

/// <summary>The verdict of <see cref="LinearizabilityChecker"/> over a whole history.</summary>
/// <typeparam name="TInput">What a client asks.</typeparam>
/// <typeparam name="TOutput">What a client is answered.</typeparam>
public sealed class LinearizabilityResult<TInput, TOutput>
{
    private const int PrefixLinesShown = 25;

    internal LinearizabilityResult(IReadOnlyList<PartitionResult<TInput, TOutput>> partitions, TimeSpan elapsed)
    {
        Partitions = partitions;
        Elapsed = elapsed;
        Outcome = partitions.Any(p => p.Outcome == CheckOutcome.NotLinearizable) ? CheckOutcome.NotLinearizable
            : partitions.Any(p => p.Outcome == CheckOutcome.Unknown) ? CheckOutcome.Unknown
            : CheckOutcome.Linearizable;
    }

    /// <summary>NotLinearizable if any part is; otherwise Unknown if any part is; otherwise Linearizable.</summary>
    public CheckOutcome Outcome { get; }

    /// <summary>Whether the history is linearizable.</summary>
    public bool IsLinearizable => Outcome == CheckOutcome.Linearizable;

    /// <summary>The verdict for each independent sub-history.</summary>
    public IReadOnlyList<PartitionResult<TInput, TOutput>> Partitions { get; }

    /// <summary>How long the check took.</summary>
    public TimeSpan Elapsed { get; }

    /// <summary>The verdict and, for each part that is not linearizable, its counterexample.</summary>
    public override string ToString()
    {
        var text = new StringBuilder();
        var operations = Partitions.Sum(p => p.Operations.Count);
        text.Append(CultureInfo.InvariantCulture, $"{Outcome}: {operations} operations in {Partitions.Count} partition(s), checked in {Elapsed.TotalMilliseconds:F1} ms");
        foreach (var part in Partitions.Where(p => p.Outcome != CheckOutcome.Linearizable))
        {
            text.AppendLine();
            text.Append(CultureInfo.InvariantCulture, $"key '{part.Key}': {part.Outcome} after {part.StatesExplored} states");
            if (part.Outcome != CheckOutcome.NotLinearizable)
            {
                continue;
            }

            text.AppendLine();
            text.Append(CultureInfo.InvariantCulture, $"  longest linearizable prefix ({part.LongestPrefix.Count} of {part.Operations.Count} operations):");
            var skipped = Math.Max(0, part.LongestPrefix.Count - PrefixLinesShown);
            if (skipped > 0)
            {
                text.AppendLine();
                text.Append(CultureInfo.InvariantCulture, $"    ... {skipped} earlier operations");
            }

            foreach (var op in part.LongestPrefix.Skip(skipped))
            {
                text.AppendLine();
                text.Append(CultureInfo.InvariantCulture, $"    {op}");
            }

            text.AppendLine();
            text.Append(CultureInfo.InvariantCulture, $"  state after the prefix: {part.StateAfterPrefix}");
            text.AppendLine();
            text.Append("  no operation that could come next fits:");
            foreach (var (op, reason) in part.Unplaced)
            {
                text.AppendLine();
                text.Append(CultureInfo.InvariantCulture, $"    {op}  ({reason})");
            }
        }

        return text.ToString();
    }
}
