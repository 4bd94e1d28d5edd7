using Microsoft.Extensions.Logging;

namespace HsmVault.Vault.Audit;

/// <summary>
/// The vault's audit events: every change to a record and every refused command, written by
/// every member when it applies the entry (not only by the member that served the client), so
/// a command that reached the log by any path is seen on every member. Logged under their own
/// category, <see cref="Category"/>, with event ids 5000-5099 and names, so operators route
/// them (for example to an append-only sink) without parsing text. Users appear as
/// <see cref="UserIdentity.ForLog"/> says.
/// </summary>
/// <remarks>
/// An event at Information or below is written under an <see cref="ILogger.IsEnabled"/> check, so
/// the user's pseudonym (a SHA-256) is computed only for an event that is recorded.
/// </remarks>
public sealed partial class VaultAudit(ILoggerFactory loggers, UserLogForm userForm)
{
    /// <summary>The logging category of audit events.</summary>
    public const string Category = "HsmVault.Audit";

    private readonly ILogger _logger = loggers.CreateLogger(Category);

    /// <summary>A record was stored.</summary>
    public void Registered(ulong index, string member, UserIdentity user, int guessLimit)
    {
        if (_logger.IsEnabled(LogLevel.Information))
        {
            var logged = user.ForLog(userForm);
            Log.Registered(_logger, index, member, logged, guessLimit);
        }
    }

    /// <summary>A live record was replaced (its guess count starts again).</summary>
    public void Replaced(ulong index, string member, UserIdentity user, int guessLimit) =>
        Log.Replaced(_logger, index, member, user.ForLog(userForm), guessLimit);

    /// <summary>A proven password forgave the guesses charged up to its attempt.</summary>
    public void Recovered(ulong index, string member, UserIdentity user, long attemptSerial, int guessesRemaining)
    {
        if (_logger.IsEnabled(LogLevel.Information))
        {
            var logged = user.ForLog(userForm);
            Log.Recovered(_logger, index, member, logged, attemptSerial, guessesRemaining);
        }
    }

    /// <summary>A record was destroyed after its last allowed guess.</summary>
    public void Destroyed(ulong index, string member, UserIdentity user) =>
        Log.Destroyed(_logger, index, member, user.ForLog(userForm));

    /// <summary>A record was deleted by its user.</summary>
    public void Deleted(ulong index, string member, UserIdentity user) =>
        Log.Deleted(_logger, index, member, user.ForLog(userForm));

    /// <summary>A guess was charged (Debug: one per guess is too many for Information).</summary>
    public void Charged(ulong index, string member, UserIdentity user, long attemptSerial, int guessesRemaining)
    {
        if (_logger.IsEnabled(LogLevel.Debug))
        {
            var logged = user.ForLog(userForm);
            Log.Charged(_logger, index, member, logged, attemptSerial, guessesRemaining);
        }
    }

    /// <summary>A registration ticket came back a second time.</summary>
    public void TicketReused(ulong index, string member, UserIdentity user) =>
        Log.TicketReused(_logger, index, member, user.ForLog(userForm));

    /// <summary>A log entry was not applied because it was not a fleet member's signed command.</summary>
    public void CommandRefused(ulong index, string? member, string reason) =>
        Log.CommandRefused(_logger, index, member ?? "(none)", reason);

    /// <summary>This member's state differs from what the fleet's majority reported.</summary>
    public void Diverged(ulong index, string detail) => Log.Diverged(_logger, index, detail);

    /// <summary>A record moving in from a predecessor fleet was stored pending.</summary>
    public void MovePending(ulong index, string member, UserIdentity user)
    {
        if (_logger.IsEnabled(LogLevel.Information))
        {
            var logged = user.ForLog(userForm);
            Log.MovePending(_logger, index, member, logged);
        }
    }

    /// <summary>A pending record became live with its predecessor's receipt.</summary>
    public void MovedIn(ulong index, string member, UserIdentity user, string fromFleet)
    {
        if (_logger.IsEnabled(LogLevel.Information))
        {
            var logged = user.ForLog(userForm);
            Log.MovedIn(_logger, index, member, logged, fromFleet);
        }
    }

    /// <summary>Another member reported a state that differs from the majority's.</summary>
    public void MemberDiverged(ulong index, string member) => Log.MemberDiverged(_logger, index, member);

    /// <summary>The audit events; event ids 5000-5099, the only events in the audit block 5000-5999.</summary>
    private static partial class Log
    {
        [LoggerMessage(EventId = 5000, EventName = "AuditRegistered", Level = LogLevel.Information,
            Message = "Registered {User} (limit {GuessLimit}) at index {Index}, decided by {Member}")]
        public static partial void Registered(ILogger logger, ulong index, string member, string user, int guessLimit);

        [LoggerMessage(EventId = 5001, EventName = "AuditReplaced", Level = LogLevel.Warning,
            Message = "Replaced the record of {User} (limit {GuessLimit}, guess count reset) at index {Index}, decided by {Member}")]
        public static partial void Replaced(ILogger logger, ulong index, string member, string user, int guessLimit);

        [LoggerMessage(EventId = 5002, EventName = "AuditRecovered", Level = LogLevel.Information,
            Message = "Recovered {User}: attempt {AttemptSerial} proved the password, {GuessesRemaining} guesses remain, at index {Index}, decided by {Member}")]
        public static partial void Recovered(ILogger logger, ulong index, string member, string user, long attemptSerial, int guessesRemaining);

        [LoggerMessage(EventId = 5003, EventName = "AuditDestroyed", Level = LogLevel.Warning,
            Message = "Destroyed the record of {User} after its last allowed guess, at index {Index}, decided by {Member}")]
        public static partial void Destroyed(ILogger logger, ulong index, string member, string user);

        [LoggerMessage(EventId = 5004, EventName = "AuditDeleted", Level = LogLevel.Warning,
            Message = "Deleted the record of {User} at index {Index}, decided by {Member}")]
        public static partial void Deleted(ILogger logger, ulong index, string member, string user);

        [LoggerMessage(EventId = 5005, EventName = "AuditCharged", Level = LogLevel.Debug,
            Message = "Charged attempt {AttemptSerial} of {User}; {GuessesRemaining} guesses remain; index {Index}, decided by {Member}")]
        public static partial void Charged(ILogger logger, ulong index, string member, string user, long attemptSerial, int guessesRemaining);

        [LoggerMessage(EventId = 5006, EventName = "AuditTicketReused", Level = LogLevel.Warning,
            Message = "Refused a registration of {User} at index {Index}, decided by {Member}: its registration ticket was used before")]
        public static partial void TicketReused(ILogger logger, ulong index, string member, string user);

        [LoggerMessage(EventId = 5007, EventName = "AuditCommandRefused", Level = LogLevel.Error,
            Message = "Refused the log entry at index {Index} (claimed signer {Member}): {Reason}. Someone who is not a fleet member's token wrote to the log: check who holds the peer credentials")]
        public static partial void CommandRefused(ILogger logger, ulong index, string member, string reason);

        [LoggerMessage(EventId = 5008, EventName = "AuditDiverged", Level = LogLevel.Critical,
            Message = "This member's state differs from the fleet's at index {Index} ({Detail}); it has stopped serving. See the README's disaster-recovery procedure")]
        public static partial void Diverged(ILogger logger, ulong index, string detail);

        [LoggerMessage(EventId = 5009, EventName = "AuditMemberDiverged", Level = LogLevel.Error,
            Message = "Member {Member} reported a state at index {Index} that differs from the majority's")]
        public static partial void MemberDiverged(ILogger logger, ulong index, string member);

        [LoggerMessage(EventId = 5010, EventName = "AuditMovePending", Level = LogLevel.Information,
            Message = "Stored the record of {User} pending its move from a predecessor fleet, at index {Index}, decided by {Member}")]
        public static partial void MovePending(ILogger logger, ulong index, string member, string user);

        [LoggerMessage(EventId = 5011, EventName = "AuditMovedIn", Level = LogLevel.Information,
            Message = "The record of {User} moved in from fleet {FromFleet} (its receipt verified) and is live, at index {Index}, decided by {Member}")]
        public static partial void MovedIn(ILogger logger, ulong index, string member, string user, string fromFleet);
    }
}
