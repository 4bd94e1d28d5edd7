using System.Security.Cryptography;
using HsmVault.Crypto.Opaque;

namespace HsmVault.Vault.Recovery;

/// <summary>
/// A login between StartRecovery and FinishRecovery. Its guess is already charged; it holds
/// what the server needs to check KE3. Lives only in this member's memory.
/// </summary>
/// <param name="User">Whose login.</param>
/// <param name="Version">The record version the guess was charged on.</param>
/// <param name="AttemptSerial">The serial the charge gave the record: what a proven password resets.</param>
/// <param name="LoginState">The server's OPAQUE state, wiped on dispose.</param>
/// <param name="EncryptedSecret">What a proven password releases.</param>
/// <param name="GuessesRemaining">Guesses left, as counted by the charge.</param>
/// <param name="ExpiresAt">When the session is forgotten.</param>
internal sealed record RecoverySession(
    UserIdentity User,
    long Version,
    long AttemptSerial,
    ServerLoginState LoginState,
    byte[] EncryptedSecret,
    int GuessesRemaining,
    DateTimeOffset ExpiresAt) : IDisposable
{
    public void Dispose() => LoginState.Dispose();
}

/// <summary>
/// Recovery sessions in flight on this member, each usable once (a replayed KE3 finds
/// nothing) and only until it expires. Bounded for the member, for each tenant and for each
/// user, so neither a flood of StartRecovery calls nor one tenant can take every slot.
/// </summary>
/// <remarks>
/// A slot is reserved before the guess is charged and filled after (<see cref="Reserve"/>):
/// a charged guess always has room for its session, so it never goes unanswered for lack of it.
/// </remarks>
internal sealed class RecoverySessions(TimeProvider time, int capacity, int perTenant, int perUser, TimeSpan lifetime) : IDisposable
{
    /// <summary>Length of a session id, in bytes.</summary>
    public const int SessionIdBytes = 16;

    private readonly Lock _lock = new();
    private readonly Dictionary<string, RecoverySession> _sessions = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _perTenant = new(StringComparer.Ordinal);
    private readonly Dictionary<UserIdentity, int> _perUser = [];
    private int _slots;
    private int _fillsSinceSweep;

    public DateTimeOffset NewExpiry() => time.GetUtcNow() + lifetime;

    /// <summary>Takes a slot for <paramref name="user"/>, before a guess is charged.</summary>
    /// <exception cref="VaultException">ResourceExhausted, naming the limit that is reached.</exception>
    public Reservation Reserve(UserIdentity user)
    {
        lock (_lock)
        {
            if (_slots >= capacity || Count(_perTenant, user.Tenant) >= perTenant || Count(_perUser, user) >= perUser)
            {
                RemoveExpiredLocked();
            }

            if (Count(_perUser, user) >= perUser)
            {
                throw Full($"{user} already has {perUser} recoveries in flight on this member; finish or abandon one (they expire after {lifetime.TotalSeconds:0} s)");
            }

            if (Count(_perTenant, user.Tenant) >= perTenant)
            {
                throw Full($"the caller's tenant already has {perTenant} recoveries in flight on this member; retry shortly");
            }

            if (_slots >= capacity)
            {
                throw Full($"this member already has {capacity} recovery sessions in flight; retry shortly or use another member");
            }

            Adjust(user, +1);
            return new Reservation(this, user);
        }
    }

    /// <summary>Removes and returns the caller's session, or null when it is unknown, used, expired or someone else's.</summary>
    public RecoverySession? Take(ReadOnlySpan<byte> sessionId, UserIdentity caller)
    {
        if (sessionId.Length != SessionIdBytes)
        {
            return null;
        }

        var key = Convert.ToHexString(sessionId);
        lock (_lock)
        {
            if (!_sessions.TryGetValue(key, out var session) || session.User != caller)
            {
                // Someone else's session stays where it is: a stranger's guess must not cancel it.
                return null;
            }

            _sessions.Remove(key);
            Adjust(session.User, -1);
            if (session.ExpiresAt <= time.GetUtcNow())
            {
                session.Dispose();
                return null;
            }

            return session;
        }
    }

    /// <summary>Puts back a session whose finish could not be committed, so the client can finish it again.</summary>
    public void Restore(ReadOnlySpan<byte> sessionId, RecoverySession session)
    {
        lock (_lock)
        {
            _sessions[Convert.ToHexString(sessionId)] = session;
            Adjust(session.User, +1);
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            foreach (var session in _sessions.Values)
            {
                session.Dispose();
            }

            _sessions.Clear();
        }
    }

    private byte[] Fill(RecoverySession session)
    {
        var id = RandomNumberGenerator.GetBytes(SessionIdBytes);
        lock (_lock)
        {
            _sessions[Convert.ToHexString(id)] = session;

            // Abandoned sessions hold key material: sweep now and then, not only when the table is full.
            if (++_fillsSinceSweep % 256 == 0)
            {
                RemoveExpiredLocked();
            }
        }

        return id;
    }

    private void Release(UserIdentity user)
    {
        lock (_lock)
        {
            Adjust(user, -1);
        }
    }

    private void Adjust(UserIdentity user, int delta)
    {
        _slots += delta;
        Set(_perTenant, user.Tenant, Count(_perTenant, user.Tenant) + delta);
        Set(_perUser, user, Count(_perUser, user) + delta);
    }

    private static int Count<TKey>(Dictionary<TKey, int> counts, TKey key)
        where TKey : notnull => counts.GetValueOrDefault(key);

    private static void Set<TKey>(Dictionary<TKey, int> counts, TKey key, int value)
        where TKey : notnull
    {
        if (value <= 0)
        {
            counts.Remove(key);
        }
        else
        {
            counts[key] = value;
        }
    }

    private static VaultException Full(string message) => new(VaultError.ResourceExhausted, message);

    private void RemoveExpiredLocked()
    {
        var now = time.GetUtcNow();
        foreach (var (key, session) in _sessions.Where(pair => pair.Value.ExpiresAt <= now).ToList())
        {
            _sessions.Remove(key);
            Adjust(session.User, -1);
            session.Dispose();
        }
    }

    /// <summary>A slot held for one user's recovery: filled with its session, or given back.</summary>
    internal sealed class Reservation(RecoverySessions sessions, UserIdentity user) : IDisposable
    {
        private bool _done;

        /// <summary>Stores the session in the reserved slot; cannot fail.</summary>
        public byte[] Fill(RecoverySession session)
        {
            _done = true;
            return sessions.Fill(session);
        }

        /// <summary>Gives the slot back unless it was filled.</summary>
        public void Dispose()
        {
            if (!_done)
            {
                _done = true;
                sessions.Release(user);
            }
        }
    }
}
