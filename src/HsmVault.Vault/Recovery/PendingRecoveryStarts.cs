using System.Collections.Concurrent;
using System.Security.Cryptography;

namespace HsmVault.Vault.Recovery;

/// <summary>
/// StartRecovery calls by request id, so that a client whose call timed out (the guess may
/// already be charged) can ask again with the same request id and get the same answer,
/// instead of a second charge. A start runs to its end whether or not its caller waits for it.
/// </summary>
internal sealed class PendingRecoveryStarts(TimeProvider time, TimeSpan retention)
{
    private readonly ConcurrentDictionary<(UserIdentity User, string RequestId), Entry> _starts = new();
    private long _runsSinceSweep;

    /// <summary>
    /// The start of <paramref name="user"/>'s recovery <paramref name="requestId"/>: the one in
    /// flight or finished, or a new one made by <paramref name="run"/>.
    /// </summary>
    /// <exception cref="VaultException">InvalidArgument when the request id was used with another KE1.</exception>
    public Task<RecoveryStartResult> GetOrStartAsync(UserIdentity user, byte[] requestId, byte[] ke1, Func<Task<RecoveryStartResult>> run)
    {
        var ke1Hash = SHA256.HashData(ke1);
        var key = (user, Convert.ToHexString(requestId));
        // The Lazy only makes one caller start the work; run hands it to the thread pool and returns
        // its task at once, so .Value never waits for asynchronous work (what VSTHRD011 guards against).
#pragma warning disable VSTHRD011
        var entry = _starts.GetOrAdd(key, _ => new Entry(ke1Hash, new Lazy<Task<RecoveryStartResult>>(run), time.GetUtcNow() + retention));
#pragma warning restore VSTHRD011
        if (!CryptographicOperations.FixedTimeEquals(entry.Ke1Hash, ke1Hash))
        {
            throw new VaultException(VaultError.InvalidArgument,
                "request_id was already used with a different ke1; use a new request_id for a new login attempt");
        }

        if (Interlocked.Increment(ref _runsSinceSweep) % 256 == 0)
        {
            Sweep();
        }

        return entry.Start.Value;
    }

    /// <summary>
    /// Forgets a start that failed before its charge was proposed: nothing was spent, so the
    /// same request id may run again (a retry after, say, a moment without a leader).
    /// </summary>
    public void Forget(UserIdentity user, byte[] requestId) => _starts.TryRemove((user, Convert.ToHexString(requestId)), out _);

    private void Sweep()
    {
        var now = time.GetUtcNow();
        foreach (var (key, entry) in _starts)
        {
            if (entry.ForgetAt <= now && entry.Start.IsValueCreated && entry.Start.Value.IsCompleted)
            {
                _starts.TryRemove(key, out _);
            }
        }
    }

    private sealed record Entry(byte[] Ke1Hash, Lazy<Task<RecoveryStartResult>> Start, DateTimeOffset ForgetAt);
}
