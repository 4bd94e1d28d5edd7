using HsmVault.Protocol.V1;

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
    /// Why, for refusals a client acts on (sent in the <see cref="RefusalTrailer"/>);
    /// <see cref="RefusalReason.Unspecified"/> for the rest.
    /// </summary>
    public RefusalReason Reason { get; init; }
}
