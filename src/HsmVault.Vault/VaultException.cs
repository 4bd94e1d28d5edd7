namespace HsmVault.Vault;

/// <summary>Why a vault operation was refused; the server maps each to a gRPC status.</summary>
public enum VaultError
{
    /// <summary>A field has the wrong size or encoding. Nothing changed.</summary>
    InvalidArgument,

    /// <summary>The request does not fit the current state. Nothing changed.</summary>
    FailedPrecondition,

    /// <summary>There is no record for the caller.</summary>
    NotFound,

    /// <summary>Too many recovery sessions are in flight.</summary>
    ResourceExhausted,

    /// <summary>The token or the fleet majority cannot be reached; retry later.</summary>
    Unavailable,

    /// <summary>A stored record failed its integrity check.</summary>
    DataLoss,

    /// <summary>The record changed concurrently, again and again; retry.</summary>
    Aborted,

    /// <summary>The caller's credentials do not say who the caller is.</summary>
    Unauthenticated,
}

/// <summary>
/// A refused vault operation. The message is meant for the person calling the API: it says
/// what was wrong and never contains a secret.
/// </summary>
public sealed class VaultException(VaultError error, string message, Exception? innerException = null)
    : Exception(message, innerException)
{
    /// <summary>Why the operation was refused.</summary>
    public VaultError Error { get; } = error;

    /// <summary>
    /// A stable, machine-readable reason for refusals a client acts on (see <see cref="VaultErrorReasons"/>);
    /// null for the rest.
    /// </summary>
    public string? Reason { get; init; }
}

/// <summary>Machine-readable reasons, sent in the <c>hsmvault-reason</c> trailer.</summary>
public static class VaultErrorReasons
{
    /// <summary>The record was destroyed after its last allowed guess.</summary>
    public const string RecordDestroyed = "RECORD_DESTROYED";

    /// <summary>A live record exists and the registration did not ask to replace it.</summary>
    public const string AlreadyRegistered = "ALREADY_REGISTERED";

    /// <summary>FinishRecovery named a session this member does not have (finished, expired, or another member's).</summary>
    public const string UnknownSession = "UNKNOWN_SESSION";

    /// <summary>StartRecovery for a user with no record.</summary>
    public const string NotRegistered = "NOT_REGISTERED";

    /// <summary>FinishRegistration with a ticket that already registered once.</summary>
    public const string TicketAlreadyUsed = "TICKET_ALREADY_USED";
}
