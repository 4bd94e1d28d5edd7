namespace HsmVault.Containers.Tests.Support;

/// <summary>
/// Waiting for a fleet of containers to get somewhere, without timed assertions: a condition is
/// polled until it holds, and the (generous) limit only bounds a test that would otherwise hang.
/// </summary>
public static class Poll
{
    /// <summary>Upper bound for anything a healthy fleet does (start, an election, a catch-up) in containers on a loaded 2-core machine.</summary>
    public static readonly TimeSpan Patience = TimeSpan.FromMinutes(3);

    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(250);

    /// <summary>Polls <paramref name="probe"/> until it returns a value; throws after <paramref name="timeout"/> (default <see cref="Patience"/>).</summary>
    public static async Task<T> UntilAsync<T>(Func<Task<T?>> probe, string what, TimeSpan? timeout = null)
        where T : class
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
