using System.Globalization;
using System.Text;

namespace HsmVault.Testing.Linearizability;

/// <summary>
/// The vault's key safety property, checked directly and cheaply: between two resets of a
/// user's counter (a registration or a successful recovery), the fleet never answers more
/// StartRecovery calls with <see cref="VaultOutput.Charged"/> than the registration's limit,
/// whatever the faults.
/// </summary>
/// <remarks>
/// No search is needed. Every reset is placed somewhere inside its own [call, return] interval
/// (and a pending one anywhere after its call), so a stretch of time that no reset interval
/// touches lies inside one epoch in every linearization. Counting the Charged answers whose whole
/// interval falls inside such a stretch is therefore sound (no false alarm on a correct history);
/// charges that overlap a reset are not counted, since they may belong to either side. The
/// limit is the largest one any registration called before the stretch could have set; with no
/// registration in the history, it is 0.
/// </remarks>
public static class GuessBudget
{
    /// <summary>Checks every user's guess budget in <paramref name="history"/>.</summary>
    public static GuessBudgetResult Check(IReadOnlyList<Operation<VaultInput, VaultOutput>> history)
    {
        ArgumentNullException.ThrowIfNull(history);
        var violations = new List<GuessBudgetViolation>();
        foreach (var user in history.GroupBy(op => op.Key, StringComparer.Ordinal))
        {
            violations.AddRange(CheckUser(user.Key, [.. user]));
        }

        return new GuessBudgetResult(violations);
    }

    private static IEnumerable<GuessBudgetViolation> CheckUser(string key, IReadOnlyList<Operation<VaultInput, VaultOutput>> ops)
    {
        var resets = ops.Where(MayReset).Select(op => (op.Call, op.Return)).OrderBy(r => r.Call).ToList();
        var registrations = ops.Where(op => op.Input is VaultInput.Register && (op.IsPending || op.Output is VaultOutput.Registered)).ToList();
        var charges = ops.Where(op => !op.IsPending && op.Input is VaultInput.StartRecovery && op.Output is VaultOutput.Charged).ToList();

        // The gaps between merged reset intervals: (start, end), both exclusive.
        var gaps = new List<(long Start, long End)>();
        var start = long.MinValue;
        var index = 0;
        while (index < resets.Count)
        {
            var (call, end) = resets[index];
            for (index++; index < resets.Count && resets[index].Call <= end; index++)
            {
                end = Math.Max(end, resets[index].Return);
            }

            gaps.Add((start, call));
            start = end;
        }

        gaps.Add((start, Operation.NeverReturned));
        foreach (var (gapStart, gapEnd) in gaps)
        {
            var inside = charges.Where(op => op.Call > gapStart && op.Return < gapEnd).ToList();
            var limit = registrations.Where(op => op.Call < gapEnd).Select(op => ((VaultInput.Register)op.Input).Limit).DefaultIfEmpty(0).Max();
            if (inside.Count > limit)
            {
                yield return new GuessBudgetViolation(key, gapStart, gapEnd, inside.Count, limit, inside);
            }
        }
    }

    // Could this operation have reset the user's counter? A completed one only if it said so; a
    // pending registration or correct-password finish may have taken effect at any time.
    private static bool MayReset(Operation<VaultInput, VaultOutput> op) => op.IsPending
        ? op.Input is VaultInput.Register or VaultInput.FinishRecovery { CorrectPassword: true }
        : op.Output is VaultOutput.Registered or VaultOutput.Success;
}

/// <summary>More guesses were charged within one epoch than the limit allows.</summary>
/// <param name="Key">The user.</param>
/// <param name="After">The stretch starts after this time (the end of the previous reset).</param>
/// <param name="Before">The stretch ends before this time (the call of the next possible reset).</param>
/// <param name="Charged">How many StartRecovery calls were answered Charged in the stretch.</param>
/// <param name="Limit">The largest limit in force.</param>
/// <param name="Charges">Those operations.</param>
public sealed record GuessBudgetViolation(
    string Key, long After, long Before, int Charged, int Limit, IReadOnlyList<Operation<VaultInput, VaultOutput>> Charges)
{
    /// <summary>A readable description with every charge.</summary>
    public override string ToString()
    {
        var text = new StringBuilder();
        var after = After == long.MinValue ? "the start" : After.ToString(CultureInfo.InvariantCulture);
        var before = Before == Operation.NeverReturned ? "the end" : Before.ToString(CultureInfo.InvariantCulture);
        text.Append(CultureInfo.InvariantCulture, $"key '{Key}': {Charged} guesses charged with limit {Limit} between {after} and {before}:");
        foreach (var op in Charges)
        {
            text.AppendLine();
            text.Append(CultureInfo.InvariantCulture, $"    {op}");
        }

        return text.ToString();
    }
}

/// <summary>The result of <see cref="GuessBudget.Check"/>.</summary>
public sealed class GuessBudgetResult
{
    internal GuessBudgetResult(IReadOnlyList<GuessBudgetViolation> violations) => Violations = violations;

    /// <summary>Whether no user was charged beyond its limit.</summary>
    public bool Ok => Violations.Count == 0;

    /// <summary>Each stretch in which a user was charged beyond its limit.</summary>
    public IReadOnlyList<GuessBudgetViolation> Violations { get; }

    /// <summary>"guess budget respected", or every violation.</summary>
    public override string ToString() =>
        Ok ? "guess budget respected" : string.Join(Environment.NewLine, Violations.Select(v => v.ToString()));
}
