using Microsoft.Extensions.Logging;

namespace HsmVault.Witness.Internal;

/// <summary>Witness log messages; event ids 7000-7099 belong to HsmVault.Witness.</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 7000, Level = LogLevel.Information, Message = "Witness log '{Origin}' open with {TreeSize} entries; verifier key {VerifierKey}")]
    public static partial void LogOpened(ILogger logger, string origin, ulong treeSize, string verifierKey);

    [LoggerMessage(EventId = 7001, Level = LogLevel.Information, Message = "Logged {Namespace} epoch {Epoch} (digest {Digest}) as entry {LeafIndex}")]
    public static partial void BundleLogged(ILogger logger, string @namespace, ulong epoch, string digest, ulong leafIndex);

    [LoggerMessage(EventId = 7002, Level = LogLevel.Warning, Message = "Refused equivocation: {Namespace} epoch {Epoch} is logged with digest {LoggedDigest}; the operator submitted {AttemptedDigest}")]
    public static partial void EquivocationRefused(ILogger logger, string @namespace, ulong epoch, string loggedDigest, string attemptedDigest);

    [LoggerMessage(EventId = 7003, Level = LogLevel.Warning, Message = "Refused a submission for {Namespace} epoch {Epoch}: no operator key of the namespace verifies its signature")]
    public static partial void SubmissionUnauthenticated(ILogger logger, string @namespace, ulong epoch);

    [LoggerMessage(EventId = 7004, Level = LogLevel.Information, Message = "Generated the witness key '{KeyLabel}' in token '{TokenLabel}'")]
    public static partial void KeyGenerated(ILogger logger, string keyLabel, string tokenLabel);

    [LoggerMessage(EventId = 7005, Level = LogLevel.Information, Message = "hsmvault-witness {Origin} listening on {Addresses}")]
    public static partial void Listening(ILogger logger, string origin, string addresses);
}
