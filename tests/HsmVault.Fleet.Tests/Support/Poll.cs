namespace HsmVault.Fleet.Tests.Support;

/// <summary>
/// Waiting for a fleet to get somewhere, without timed assertions: a condition is polled until
/// it holds, and the (generous) time limit only bounds a test that would otherwise hang.
/// </summary>
public static class Poll
{
    /// <summary>Upper bound for anything a healthy fleet does (an election, a catch-up) on a loaded 2-core machine.</summary>
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(90);

    /// <summary>
    /// How long the linearizability checker may search a fleet test's history before it answers Unknown
    /// (which fails the test): histories with unanswered calls from a crash branch widely, and a loaded
    /// 2-core machine checks them slowly. It bounds a search; it is not a timed assertion.
    /// </summary>
    public static readonly TimeSpan LinearizabilityBudget = TimeSpan.FromSeconds(180);

    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(100);

    /// <summary>Polls <paramref name="condition"/> until it holds; throws after <paramref name="timeout"/> (default <see cref="Patience"/>).</summary>
    public static async Task UntilAsync(Func<Task<bool>> condition, string what, TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(condition);
        await UntilAsync<bool?>(async () => await condition() ? true : null, what, timeout);
    }

    /// <summary>Polls <paramref name="condition"/> until it holds; throws after <paramref name="timeout"/> (default <see cref="Patience"/>).</summary>
    public static Task UntilAsync(Func<bool> condition, string what, TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(condition);
        return UntilAsync(() => Task.FromResult(condition()), what, timeout);
    }

    /// <summary>Polls <paramref name="probe"/> until it returns a value; throws after <paramref name="timeout"/> (default <see cref="Patience"/>).</summary>
    public static async Task<T> UntilAsync<T>(Func<Task<T?>> probe, string what, TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(probe);
        var limit = timeout ?? Patience;
        var deadline = DateTime.UtcNow + limit;
        while (true)
        {
            if (await probe() is { } value)
            {
                return value;
            }

            if (DateTime.UtcNow >= deadline)
            {
                throw new TimeoutException($"gave up after {limit} waiting for {what}");
            }

            await Task.Delay(Interval);
        }
    }
}
