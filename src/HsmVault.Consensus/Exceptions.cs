namespace HsmVault.Consensus;

/// <summary>
/// This member cannot take the request because it does not lead (or stopped leading before the command
/// committed, in which case the command was definitely not applied). Retry at <see cref="LeaderId"/>.
/// </summary>
public sealed class NotLeaderException : Exception
{
    /// <summary>Creates the exception without a known leader.</summary>
    public NotLeaderException()
        : this(null, "This member is not the leader.")
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public NotLeaderException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and inner exception.</summary>
    public NotLeaderException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates the exception naming the leader this member knows of.</summary>
    public NotLeaderException(string? leaderId, string message)
        : base(message)
    {
        LeaderId = leaderId;
    }

    /// <summary>The leader this member knows of, or null during an election.</summary>
    public string? LeaderId { get; }
}

/// <summary>
/// No majority answered in time. For a proposal the outcome is unknown: the command may still commit later,
/// so the caller must not assume it failed (for the vault: the guess may have been counted).
/// </summary>
public sealed class QuorumUnavailableException : Exception
{
    /// <summary>Creates the exception.</summary>
    public QuorumUnavailableException()
        : base("No majority of the fleet answered in time.")
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public QuorumUnavailableException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and inner exception.</summary>
    public QuorumUnavailableException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
