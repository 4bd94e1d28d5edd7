using System.Collections.Concurrent;
using System.Security.Cryptography;
using HsmVault.Crypto.Opaque;

namespace HsmVault.Vault.Recovery;

/// <summary>
/// A login between StartRecovery and FinishRecovery. Its guess is already charged; it holds
/// what the server needs to check KE3. Lives only in this member's memory.
/// </summary>
internal sealed class RecoverySession(
    UserIdentity user,
    long version,
    ServerLoginState loginState,
    byte[]? encryptedSecret,
    int guessesRemaining,
    DateTimeOffset expiresAt) : IDisposable
{
    public UserIdentity User { get; } = user;

    public long Version { get; } = version;

    public ServerLoginState LoginState { get; } = loginState;

    /// <summary>Null for a fake record: such a login can never succeed.</summary>
    public byte[]? EncryptedSecret { get; } = encryptedSecret;

    public int GuessesRemaining { get; } = guessesRemaining;

    public DateTimeOffset ExpiresAt { get; } = expiresAt;

    public void Dispose() => LoginState.Dispose();
}

/// <summary>
/// Recovery sessions in flight on this member, each usable once (a replayed KE3 finds
/// nothing) and only until it expires. Bounded, so a flood of StartRecovery calls cannot
/// exhaust memory.
/// </summary>
internal sealed class RecoverySessions(TimeProvider time, int capacity, TimeSpan lifetime) : IDisposable
{
    /// <summary>Length of a session id, in bytes.</summary>
    public const int SessionIdBytes = 16;

    private const int SweepEvery = 256;
    private readonly ConcurrentDictionary<string, RecoverySession> _sessions = new(StringComparer.Ordinal);
    private long _addsSinceSweep;

    public DateTimeOffset NewExpiry() => time.GetUtcNow() + lifetime;

    /// <summary>
    /// Refuses early, before a guess is charged, when the table is full: otherwise the guess
    /// would be spent on a session that cannot be stored.
    /// </summary>
    public void EnsureRoom()
    {
        if (_sessions.Count >= capacity)
        {
            RemoveExpired();
            if (_sessions.Count >= capacity)
            {
                throw Full();
            }
        }
    }

    /// <summary>Stores a session and returns its id.</summary>
    /// <exception cref="VaultException">ResourceExhausted when the table is full of live sessions.</exception>
    public byte[] Add(RecoverySession session)
    {
        if (_sessions.Count >= capacity)
        {
            RemoveExpired();
            if (_sessions.Count >= capacity)
            {
                session.Dispose();
                throw Full();
            }
        }

        var id = RandomNumberGenerator.GetBytes(SessionIdBytes);
        _sessions[Convert.ToHexString(id)] = session;
        // Abandoned sessions hold key material: sweep now and then, not only when the table is full.
        if (Interlocked.Increment(ref _addsSinceSweep) % SweepEvery == 0)
        {
            RemoveExpired();
        }

        return id;
    }

    /// <summary>Removes and returns the caller's session, or null when it is unknown, used, expired or someone else's.</summary>
    public RecoverySession? Take(ReadOnlySpan<byte> sessionId, UserIdentity caller)
    {
        if (sessionId.Length != SessionIdBytes)
        {
            return null;
        }

        var key = Convert.ToHexString(sessionId);
        if (!_sessions.TryGetValue(key, out var session) || session.User != caller)
        {
            // Someone else's session stays where it is: a stranger's guess must not cancel it.
            return null;
        }

        if (!_sessions.TryRemove(key, out session))
        {
            return null;
        }

        if (session.ExpiresAt <= time.GetUtcNow())
        {
            session.Dispose();
            return null;
        }

        return session;
    }

    public void Dispose()
    {
        foreach (var key in _sessions.Keys)
        {
            if (_sessions.TryRemove(key, out var session))
            {
                session.Dispose();
            }
        }
    }

    private VaultException Full() =>
        new(VaultError.ResourceExhausted, $"this member already has {capacity} recovery sessions in flight; retry shortly");

    private void RemoveExpired()
    {
        var now = time.GetUtcNow();
        foreach (var (key, session) in _sessions)
        {
            if (session.ExpiresAt <= now && _sessions.TryRemove(key, out _))
            {
                session.Dispose();
            }
        }
    }
}
