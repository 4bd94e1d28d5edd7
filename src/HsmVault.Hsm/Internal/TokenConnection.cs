using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace HsmVault.Hsm.Internal;

/// <summary>
/// One login to one token: the logged-in session kept open for the connection's life (login
/// state lasts as long as any session of the application is open on the token), the fleet key
/// handles found under it, and a pool of idle operation sessions. Replaced as a whole when the
/// token drops its sessions.
/// </summary>
internal sealed partial class TokenConnection : IDisposable
{
    private readonly ISession _loginSession;
    private readonly ConcurrentBag<ISession> _idle = [];
    private readonly ILogger _logger;
    private volatile bool _retired;

    private TokenConnection(ISlot slot, TokenDescription description, ISession loginSession, FleetKeyHandles keys, int generation, ILogger logger)
    {
        Slot = slot;
        Description = description;
        _loginSession = loginSession;
        Keys = keys;
        Generation = generation;
        _logger = logger;
    }

    public ISlot Slot { get; }

    public TokenDescription Description { get; }

    public FleetKeyHandles Keys { get; }

    /// <summary>Counts reconnects, for logs.</summary>
    public int Generation { get; }

    /// <summary>Finds the token, runs <paramref name="check"/> on it (before logging in), logs in and finds the fleet keys.</summary>
    public static TokenConnection Open(
        IPkcs11Library library, TokenOptions options, Pin pin, FleetKeyLabels labels, int generation, ILogger logger,
        Action<(ISlot Slot, TokenDescription Description)>? check = null)
    {
        var (slot, description) = TokenLocator.Find(library, options);
        check?.Invoke((slot, description));
        var loginSession = TokenLocator.OpenLoggedIn(slot, pin, description.Label);
        try
        {
            var keys = FleetKeyHandles.Find(loginSession, labels, description.Label);
            return new TokenConnection(slot, description, loginSession, keys, generation, logger);
        }
        catch
        {
            loginSession.CloseQuietly();
            throw;
        }
    }

    /// <summary>An idle session, or a new one. Each session serves one operation at a time.</summary>
    private ISession Rent() => _idle.TryTake(out var session) ? session : Slot.OpenSession(SessionType.ReadWrite);

    /// <summary>
    /// Runs <paramref name="action"/> on a session of its own: an idle one or a new one, given back
    /// afterwards, or closed if a PKCS#11 call failed (the session may then hold a half-finished
    /// operation or be dead: never reuse it).
    /// </summary>
    public T Use<T>(Func<ISession, T> action)
    {
        var session = Rent();
        T result;
        try
        {
            result = action(session);
        }
        catch (Pkcs11Exception)
        {
            Discard(session);
            throw;
        }
        catch
        {
            Return(session);
            throw;
        }

        Return(session);
        return result;
    }

    /// <summary>Gives a healthy session back to the pool.</summary>
    private void Return(ISession session)
    {
        _idle.Add(session);
        if (_retired)
        {
            // Dispose may have drained the pool just before this Add.
            Drain();
        }
    }

    /// <summary>Closes a session that failed; it is never reused.</summary>
    private void Discard(ISession session) => Close(session);

    public void Dispose()
    {
        _retired = true;
        Drain();
        Close(_loginSession);
    }

    private void Drain()
    {
        while (_idle.TryTake(out var session))
        {
            Close(session);
        }
    }

    private void Close(ISession session)
    {
        if (session.CloseQuietly() is CKR rv)
        {
            Log.SessionCloseFailed(_logger, Description.Label, rv);
        }
    }

    /// <summary>Log messages of a token connection; event ids in the token's block, 2000-2009.</summary>
    private static partial class Log
    {
        [LoggerMessage(EventId = 2004, EventName = "TokenSessionCloseFailed", Level = LogLevel.Debug,
            Message = "Closing a session of token '{Label}' failed; it was already gone ({ReturnValue})")]
        public static partial void SessionCloseFailed(ILogger logger, string label, CKR returnValue);
    }
}
