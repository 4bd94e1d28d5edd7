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

    /// <summary>
    /// True when the member refused the command before proposing it (it did not lead when the command reached its
    /// core): the command is in no log, so it may be sent again, to the leader. False when this is not known, e.g.
    /// for a proposal whose entry was overwritten, which another leader may still commit.
    /// </summary>
    public bool NothingProposed { get; init; }
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

/// <summary>
/// The leader could not be asked: the link to it is down, or it could not reach a majority itself. A request
/// without effect (a read index) may be asked again; a forwarded write's fate is unknown, since the leader may
/// have proposed it before the answer was lost.
/// </summary>
public sealed class LeaderUnreachableException : Exception
{
    /// <summary>Creates the exception.</summary>
    public LeaderUnreachableException()
        : base("The leader could not be reached.")
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public LeaderUnreachableException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and inner exception.</summary>
    public LeaderUnreachableException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>
/// A write may or may not have taken effect: it reached a leader (this member or another) and no answer says which.
/// It must not be resent blindly (for the vault: a resent charge could spend a second guess); the caller checks the
/// state first. An <see cref="ILeaderLink"/> also throws it for a request the leader failed in any way other than
/// not leading or being unreachable.
/// </summary>
public sealed class OutcomeUnknownException : Exception
{
    /// <summary>Creates the exception.</summary>
    public OutcomeUnknownException()
        : base("The write may or may not have taken effect.")
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public OutcomeUnknownException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and inner exception.</summary>
    public OutcomeUnknownException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
