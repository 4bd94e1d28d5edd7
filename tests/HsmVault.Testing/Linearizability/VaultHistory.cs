namespace HsmVault.Testing.Linearizability;

/// <summary>Both checks of a vault history: linearizability against <see cref="VaultModel"/> and the guess budget.</summary>
public static class VaultHistory
{
    /// <summary>Runs <see cref="LinearizabilityChecker"/> with <see cref="VaultModel"/> and <see cref="GuessBudget"/> on <paramref name="history"/>.</summary>
    public static VaultHistoryReport Verify(
        IReadOnlyList<Operation<VaultInput, VaultOutput>> history,
        TimeSpan timeBudget,
        CancellationToken cancellationToken = default) =>
        new(
            LinearizabilityChecker.Check(new VaultModel(), history, timeBudget, cancellationToken),
            GuessBudget.Check(history));

    /// <summary>
    /// <paramref name="history"/> one operation a line, "client, key, call, return, input, output"
    /// tab separated ("-" for no answer): the form the linearizability tests' recorded histories
    /// are read in, so a failed fleet run can be replayed and minimised there.
    /// </summary>
    public static string Dump(IEnumerable<Operation<VaultInput, VaultOutput>> history) =>
        string.Join('\n', history.OrderBy(op => op.Call).Select(op => string.Create(
            System.Globalization.CultureInfo.InvariantCulture,
            $"{op.ClientId}\t{op.Key}\t{op.Call}\t{(op.IsPending ? "-" : op.Return)}\t{op.Input}\t{(op.IsPending ? "-" : op.Output)}")));
}

/// <summary>The verdicts of <see cref="VaultHistory.Verify"/>.</summary>
/// <param name="Linearizability">The model check; Unknown when the time budget ran out.</param>
/// <param name="Budget">The guess-budget check, which always finishes.</param>
public sealed record VaultHistoryReport(
    LinearizabilityResult<VaultInput, VaultOutput> Linearizability,
    GuessBudgetResult Budget)
{
    /// <summary>Whether the history is linearizable and no budget was exceeded.</summary>
    public bool Passed => Linearizability.IsLinearizable && Budget.Ok;

    /// <summary>Both verdicts, with counterexamples.</summary>
    public override string ToString() => Linearizability + Environment.NewLine + Budget;
}
