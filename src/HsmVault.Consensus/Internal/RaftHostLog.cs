using Microsoft.Extensions.Logging;

namespace HsmVault.Consensus.Internal;

/// <summary>Log messages of <see cref="RaftHost"/>; event ids 3000-3099.</summary>
internal static partial class RaftHostLog
{
    [LoggerMessage(EventId = 3000, Level = LogLevel.Information,
        Message = "Raft member {Id} started: term {Term}, commit {Commit}, applied {Applied}, last index {LastIndex}, snapshot {SnapshotIndex}")]
    public static partial void Started(ILogger logger, string id, ulong term, ulong commit, ulong applied, ulong lastIndex, ulong snapshotIndex);

    [LoggerMessage(EventId = 3001, Level = LogLevel.Warning,
        Message = "Raft member {Id}: the data directory is behind the high-water mark {Mark} (rolled back or wiped); it will not campaign or vote below the mark until it has caught up from the fleet")]
    public static partial void RollbackDetected(ILogger logger, string id, HighWaterMark mark);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Information, Message = "Raft member {Id} became leader of term {Term}")]
    public static partial void BecameLeader(ILogger logger, string id, ulong term);

    [LoggerMessage(EventId = 3003, Level = LogLevel.Information, Message = "Raft member {Id} follows {LeaderId} in term {Term}")]
    public static partial void Following(ILogger logger, string id, string leaderId, ulong term);

    [LoggerMessage(EventId = 3004, Level = LogLevel.Information, Message = "Raft member {Id} no longer leads (term {Term})")]
    public static partial void SteppedDown(ILogger logger, string id, ulong term);

    [LoggerMessage(EventId = 3005, Level = LogLevel.Information, Message = "Raft member {Id} took a snapshot at index {Index} and compacted its log")]
    public static partial void SnapshotTaken(ILogger logger, string id, ulong index);

    [LoggerMessage(EventId = 3006, Level = LogLevel.Information, Message = "Raft member {Id} installed a snapshot from the leader at index {Index}")]
    public static partial void SnapshotInstalled(ILogger logger, string id, ulong index);

    [LoggerMessage(EventId = 3007, Level = LogLevel.Warning, Message = "Raft transport failed to send {MessageType} to {To}")]
    public static partial void SendFailed(ILogger logger, string messageType, string to, Exception exception);

    [LoggerMessage(EventId = 3008, Level = LogLevel.Critical, Message = "Raft member {Id} stopped on an unrecoverable error; restart the daemon")]
    public static partial void LoopFailed(ILogger logger, string id, Exception exception);

    [LoggerMessage(EventId = 3009, Level = LogLevel.Information, Message = "Raft member {Id} stopped")]
    public static partial void Stopped(ILogger logger, string id);

    [LoggerMessage(EventId = 3010, Level = LogLevel.Information, Message = "Raft member {Id} caught up past its high-water mark")]
    public static partial void CaughtUp(ILogger logger, string id);
}
