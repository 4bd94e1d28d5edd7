using Microsoft.Extensions.Logging;
using Net.Pkcs11Interop.Common;

namespace HsmVault.Hsm.Internal;

/// <summary>Token log messages; event ids 2000-2099 belong to HsmVault.Hsm.</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 2000, Level = LogLevel.Information, Message = "Opened token '{Label}' (serial {Serial}, {Manufacturer} {Model}) in slot 0x{SlotId:x}; cap {MaxConcurrentOperations} concurrent operations")]
    public static partial void TokenOpened(ILogger logger, string label, string serial, string manufacturer, string model, ulong slotId, int maxConcurrentOperations);

    [LoggerMessage(EventId = 2001, Level = LogLevel.Warning, Message = "Token '{Label}' lost its session during {Operation} ({ReturnValue}); reconnecting")]
    public static partial void SessionLost(ILogger logger, string label, string operation, CKR returnValue);

    [LoggerMessage(EventId = 2002, Level = LogLevel.Information, Message = "Reconnected to token '{Label}' in slot 0x{SlotId:x} (generation {Generation})")]
    public static partial void Reconnected(ILogger logger, string label, ulong slotId, int generation);

    [LoggerMessage(EventId = 2003, Level = LogLevel.Error, Message = "Token '{Label}' is unavailable after reconnecting during {Operation}")]
    public static partial void TokenUnavailable(ILogger logger, string label, string operation, Exception exception);

    [LoggerMessage(EventId = 2004, Level = LogLevel.Debug, Message = "Closing a session of token '{Label}' failed; it was already gone ({ReturnValue})")]
    public static partial void SessionCloseFailed(ILogger logger, string label, CKR returnValue);

    [LoggerMessage(EventId = 2005, Level = LogLevel.Error, Message = "Token '{Label}' gave {Operation} no operation slot within {Timeout}; refusing it as unavailable")]
    public static partial void OperationTimedOut(ILogger logger, string label, string operation, TimeSpan timeout);

    [LoggerMessage(EventId = 2006, Level = LogLevel.Error, Message = "Refused token '{Label}' found in slot 0x{SlotId:x} after a lost session: {Reason}")]
    public static partial void TokenImpostor(ILogger logger, string label, ulong slotId, string reason);

    [LoggerMessage(EventId = 2010, Level = LogLevel.Information, Message = "Provisioned fleet key '{KeyLabel}' in token '{TokenLabel}'")]
    public static partial void KeyProvisioned(ILogger logger, string tokenLabel, string keyLabel);

    [LoggerMessage(EventId = 2011, Level = LogLevel.Information, Message = "Kept existing fleet key '{KeyLabel}' in token '{TokenLabel}'")]
    public static partial void KeyKept(ILogger logger, string tokenLabel, string keyLabel);

    [LoggerMessage(EventId = 2012, Level = LogLevel.Information, Message = "Token '{TokenLabel}' cannot generate (or, for a ceremony, wrap) Ed25519 keys; the fleet signing key is ECDSA P-256")]
    public static partial void SigningFallbackToP256(ILogger logger, string tokenLabel);

    [LoggerMessage(EventId = 2020, Level = LogLevel.Information, Message = "Copied fleet key '{KeyLabel}' from token '{SourceLabel}' to token '{TargetLabel}' under an ECDH-derived wrapping key")]
    public static partial void KeyCopied(ILogger logger, string sourceLabel, string targetLabel, string keyLabel);

    [LoggerMessage(EventId = 2022, Level = LogLevel.Information, Message = "Key ceremony from token '{SourceLabel}' to token '{TargetLabel}' wraps by RFC 5649 with mechanism 0x{WrapMechanism:x} and unwraps with 0x{UnwrapMechanism:x}")]
    public static partial void CeremonyMechanisms(ILogger logger, string sourceLabel, string targetLabel, ulong wrapMechanism, ulong unwrapMechanism);

    [LoggerMessage(EventId = 2021, Level = LogLevel.Information, Message = "Locked fleet key '{KeyLabel}' in token '{TokenLabel}' (CKA_EXTRACTABLE false)")]
    public static partial void KeyLocked(ILogger logger, string tokenLabel, string keyLabel);
}
