using HsmVault.Testing.Linearizability;

namespace HsmVault.Linearizability.Tests;

/// <summary>Short names for vault inputs and outputs in hand-written histories.</summary>
public static class V
{
    public static VaultInput Register(int limit, bool replace = false) => new VaultInput.Register(limit, replace);

    public static VaultInput Start { get; } = new VaultInput.StartRecovery();

    public static VaultInput Finish(bool correct) => new VaultInput.FinishRecovery(correct);

    /// <summary>A start that the finish with the same <paramref name="session"/> number completes.</summary>
    public static VaultInput StartOf(int session) => new VaultInput.StartRecovery(session);

    public static VaultInput FinishOf(int session, bool correct) => new VaultInput.FinishRecovery(correct, session);

    public static VaultInput Delete { get; } = new VaultInput.Delete();

    public static VaultInput Status { get; } = new VaultInput.Status();

    public static VaultOutput Registered { get; } = new VaultOutput.Registered();

    public static VaultOutput AlreadyRegistered { get; } = new VaultOutput.AlreadyRegistered();

    public static VaultOutput Charged(int remaining) => new VaultOutput.Charged(remaining);

    public static VaultOutput Destroyed { get; } = new VaultOutput.Destroyed();

    public static VaultOutput NotRegistered { get; } = new VaultOutput.NotRegistered();

    public static VaultOutput Success { get; } = new VaultOutput.Success();

    public static VaultOutput WrongPassword(int remaining) => new VaultOutput.WrongPassword(remaining);

    public static VaultOutput SessionInvalid { get; } = new VaultOutput.SessionInvalid();

    public static VaultOutput Deleted { get; } = new VaultOutput.Deleted();

    public static VaultOutput NotFound { get; } = new VaultOutput.NotFound();

    public static VaultOutput StatusOf(bool registered, int remaining, bool destroyed) =>
        new VaultOutput.Status(registered, remaining, destroyed);
}

/// <summary>Builds a vault history step by step: each step starts after the previous one returned.</summary>
public sealed class VaultScript
{
    private readonly List<Operation<VaultInput, VaultOutput>> _ops = [];
    private long _now;

    public IReadOnlyList<Operation<VaultInput, VaultOutput>> Ops => _ops;

    /// <summary>One operation, after everything so far.</summary>
    public VaultScript Then(VaultInput input, VaultOutput output, string key = "alice", int client = 0)
    {
        _ops.Add(Operation.Completed(client, input, _now, output, _now + 1, key));
        _now += 2;
        return this;
    }

    /// <summary>Several operations that all overlap one another (a null output is pending), after everything so far.</summary>
    public VaultScript Concurrently(string key, params (VaultInput Input, VaultOutput? Output)[] ops)
    {
        for (var i = 0; i < ops.Length; i++)
        {
            _ops.Add(ops[i].Output is null
                ? Operation.Pending<VaultInput, VaultOutput>(i + 1, ops[i].Input, _now, key)
                : Operation.Completed(i + 1, ops[i].Input, _now, ops[i].Output!, _now + 1, key));
        }

        _now += 2;
        return this;
    }

    public VaultHistoryReport Verify() => VaultHistory.Verify(_ops, TimeSpan.FromSeconds(10));

    public CheckOutcome Model() => LinearizabilityChecker.Check(new VaultModel(), _ops, TimeSpan.FromSeconds(10)).Outcome;
}
