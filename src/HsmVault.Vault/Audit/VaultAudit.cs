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
public sealed partial class VaultAudit(ILoggerFactory loggers, UserLogForm userForm)
{
    /// <summary>The logging category of audit events.</summary>
    public const string Category = "HsmVault.Audit";

    private readonly ILogger _logger = loggers.CreateLogger(Category);

    /// <summary>A record was stored.</summary>
    public void Registered(ulong index, string member, UserIdentity user, int guessLimit) =>
        LogRegistered(_logger, index, member, user.ForLog(userForm), guessLimit);

    /// <summary>A live record was replaced (its guess count starts again).</summary>
    public void Replaced(ulong index, string member, UserIdentity user, int guessLimit) =>
        LogReplaced(_logger, index, member, user.ForLog(userForm), guessLimit);

    /// <summary>A proven password forgave the guesses charged up to its attempt.</summary>
    public void Recovered(ulong index, string member, UserIdentity user, long attemptSerial, int guessesRemaining) =>
        LogRecovered(_logger, index, member, user.ForLog(userForm), attemptSerial, guessesRemaining);

    /// <summary>A record was destroyed after its last allowed guess.</summary>
    public void Destroyed(ulong index, string member, UserIdentity user) =>
        LogDestroyed(_logger, index, member, user.ForLog(userForm));

    /// <summary>A record was deleted by its user.</summary>
    public void Deleted(ulong index, string member, UserIdentity user) =>
        LogDeleted(_logger, index, member, user.ForLog(userForm));

    /// <summary>A guess was charged (Debug: one per guess is too many for Information).</summary>
    public void Charged(ulong index, string member, UserIdentity user, long attemptSerial, int guessesRemaining) =>
        LogCharged(_logger, index, member, user.ForLog(userForm), attemptSerial, guessesRemaining);

    /// <summary>A registration ticket came back a second time.</summary>
    public void TicketReused(ulong index, string member, UserIdentity user) =>
        LogTicketReused(_logger, index, member, user.ForLog(userForm));

    /// <summary>A log entry was not applied because it was not a fleet member's signed command.</summary>
    public void CommandRefused(ulong index, string? member, string reason) =>
        LogCommandRefused(_logger, index, member ?? "(none)", reason);

    /// <summary>This member's state differs from what the fleet's majority reported.</summary>
    public void Diverged(ulong index, string detail) => LogDiverged(_logger, index, detail);

    /// <summary>A record moving in from a predecessor fleet was stored pending.</summary>
    public void MovePending(ulong index, string member, UserIdentity user) =>
        LogMovePending(_logger, index, member, user.ForLog(userForm));

    /// <summary>A pending record became live with its predecessor's receipt.</summary>
    public void MovedIn(ulong index, string member, UserIdentity user, string fromFleet) =>
        LogMovedIn(_logger, index, member, user.ForLog(userForm), fromFleet);

    /// <summary>Another member reported a state that differs from the majority's.</summary>
    public void MemberDiverged(ulong index, string member) => LogMemberDiverged(_logger, index, member);

    [LoggerMessage(5000, LogLevel.Information, "Registered {User} (limit {GuessLimit}) at index {Index}, decided by {Member}", EventName = "AuditRegistered")]
    private static partial void LogRegistered(ILogger logger, ulong index, string member, string user, int guessLimit);

    [LoggerMessage(5001, LogLevel.Warning, "Replaced the record of {User} (limit {GuessLimit}, guess count reset) at index {Index}, decided by {Member}", EventName = "AuditReplaced")]
    private static partial void LogReplaced(ILogger logger, ulong index, string member, string user, int guessLimit);

    [LoggerMessage(5002, LogLevel.Information, "Recovered {User}: attempt {AttemptSerial} proved the password, {GuessesRemaining} guesses remain, at index {Index}, decided by {Member}", EventName = "AuditRecovered")]
    private static partial void LogRecovered(ILogger logger, ulong index, string member, string user, long attemptSerial, int guessesRemaining);

    [LoggerMessage(5003, LogLevel.Warning, "Destroyed the record of {User} after its last allowed guess, at index {Index}, decided by {Member}", EventName = "AuditDestroyed")]
    private static partial void LogDestroyed(ILogger logger, ulong index, string member, string user);

    [LoggerMessage(5004, LogLevel.Warning, "Deleted the record of {User} at index {Index}, decided by {Member}", EventName = "AuditDeleted")]
    private static partial void LogDeleted(ILogger logger, ulong index, string member, string user);

    [LoggerMessage(5005, LogLevel.Debug, "Charged attempt {AttemptSerial} of {User}; {GuessesRemaining} guesses remain; index {Index}, decided by {Member}", EventName = "AuditCharged")]
    private static partial void LogCharged(ILogger logger, ulong index, string member, string user, long attemptSerial, int guessesRemaining);

    [LoggerMessage(5006, LogLevel.Warning, "Refused a registration of {User} at index {Index}, decided by {Member}: its registration ticket was used before", EventName = "AuditTicketReused")]
    private static partial void LogTicketReused(ILogger logger, ulong index, string member, string user);

    [LoggerMessage(5007, LogLevel.Error, "Refused the log entry at index {Index} (claimed signer {Member}): {Reason}. Someone who is not a fleet member's token wrote to the log: check who holds the peer credentials", EventName = "AuditCommandRefused")]
    private static partial void LogCommandRefused(ILogger logger, ulong index, string member, string reason);

    [LoggerMessage(5008, LogLevel.Critical, "This member's state differs from the fleet's at index {Index} ({Detail}); it has stopped serving. See the README's disaster-recovery procedure", EventName = "AuditDiverged")]
    private static partial void LogDiverged(ILogger logger, ulong index, string detail);

    [LoggerMessage(5009, LogLevel.Error, "Member {Member} reported a state at index {Index} that differs from the majority's", EventName = "AuditMemberDiverged")]
    private static partial void LogMemberDiverged(ILogger logger, ulong index, string member);

    [LoggerMessage(5010, LogLevel.Information, "Stored the record of {User} pending its move from a predecessor fleet, at index {Index}, decided by {Member}", EventName = "AuditMovePending")]
    private static partial void LogMovePending(ILogger logger, ulong index, string member, string user);

    [LoggerMessage(5011, LogLevel.Information, "The record of {User} moved in from fleet {FromFleet} (its receipt verified) and is live, at index {Index}, decided by {Member}", EventName = "AuditMovedIn")]
    private static partial void LogMovedIn(ILogger logger, ulong index, string member, string user, string fromFleet);
}
