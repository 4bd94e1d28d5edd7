using System.Globalization;

namespace HsmVault.Testing.Linearizability;

/// <summary>
/// One operation of a concurrent history: who called it, on which independent key, when it was
/// invoked and when (if ever) it returned, and what it was asked and answered.
/// </summary>
/// <remarks>
/// Times are ticks of any monotonic clock (simulator steps or <see cref="System.Diagnostics.Stopwatch"/>
/// timestamps); only their order matters. An operation whose answer never arrived (time-out, crash,
/// <c>Unavailable</c>) is <em>pending</em>: its return time is <see cref="Operation.NeverReturned"/>,
/// its output is unknown, and it may have taken effect at any moment after its call, or never
/// (Porcupine's treatment of timed-out calls).
/// </remarks>
/// <typeparam name="TInput">What the client asked.</typeparam>
/// <typeparam name="TOutput">What the client was answered.</typeparam>
public sealed record Operation<TInput, TOutput>
{
    /// <summary>The client (session) that issued the operation; informational only.</summary>
    public required int ClientId { get; init; }

    /// <summary>The independent object the operation touched (a user), used to partition histories.</summary>
    public required string Key { get; init; }

    /// <summary>What the client asked.</summary>
    public required TInput Input { get; init; }

    /// <summary>The time at which the client invoked the operation.</summary>
    public required long Call { get; init; }

    /// <summary>The time at which the answer arrived, or <see cref="Operation.NeverReturned"/>.</summary>
    public long Return { get; init; } = Operation.NeverReturned;

    /// <summary>The answer; meaningless when <see cref="IsPending"/>.</summary>
    public TOutput? Output { get; init; }

    /// <summary>Whether the answer never arrived, so the outcome is unknown.</summary>
    public bool IsPending => Return == Operation.NeverReturned;

    /// <summary>A one-line description for counterexamples.</summary>
    public override string ToString()
    {
        var end = IsPending ? "∞" : Return.ToString(CultureInfo.InvariantCulture);
        var output = IsPending ? "? (no answer)" : Output?.ToString() ?? "null";
        return string.Create(
            CultureInfo.InvariantCulture,
            $"client {ClientId} key '{Key}' [{Call}, {end}] {Input} -> {output}");
    }
}

/// <summary>Factories for <see cref="Operation{TInput, TOutput}"/>.</summary>
public static class Operation
{
    /// <summary>The return time of an operation whose answer never arrived: it is concurrent with everything after its call.</summary>
    public const long NeverReturned = long.MaxValue;

    /// <summary>An operation that returned <paramref name="output"/> at <paramref name="returnTime"/>.</summary>
    public static Operation<TInput, TOutput> Completed<TInput, TOutput>(
        int clientId, TInput input, long call, TOutput output, long returnTime, string key = "")
    {
        if (returnTime < call)
        {
            throw new ArgumentOutOfRangeException(nameof(returnTime), "An operation cannot return before it was called.");
        }

        if (returnTime == NeverReturned)
        {
            throw new ArgumentOutOfRangeException(nameof(returnTime), "Use Pending for an operation that never returned.");
        }

        return new Operation<TInput, TOutput>
        {
            ClientId = clientId, Key = key, Input = input, Call = call, Output = output, Return = returnTime,
        };
    }

    /// <summary>An operation whose outcome is unknown: it may have taken effect at any time after <paramref name="call"/>, or never.</summary>
    public static Operation<TInput, TOutput> Pending<TInput, TOutput>(int clientId, TInput input, long call, string key = "") =>
        new() { ClientId = clientId, Key = key, Input = input, Call = call };
}
