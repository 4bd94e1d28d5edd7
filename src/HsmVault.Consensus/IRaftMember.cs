namespace HsmVault.Consensus;

/// <summary>
/// This member's Raft as the <see cref="LeaderRouter"/> uses it: who leads, and the leader's half of a write and of a
/// read barrier. <see cref="RaftHost"/> in the daemon; in tests, the deterministic simulator's members, which answer
/// through the same <see cref="Internal.PendingRequests"/>.
/// </summary>
public interface IRaftMember
{
    /// <summary>This member's id.</summary>
    string Id { get; }

    /// <summary>True while this member leads.</summary>
    bool IsLeader { get; }

    /// <summary>The leader this member knows of, or null during an election.</summary>
    string? LeaderId { get; }

    /// <summary>Commits <paramref name="command"/> from the leader; returns the result of applying it here.</summary>
    /// <exception cref="NotLeaderException">This member does not lead, or lost its lead and the command was not applied.</exception>
    /// <exception cref="QuorumUnavailableException">No majority in time; the command may still commit.</exception>
    Task<byte[]> ProposeAsync(byte[] command, CancellationToken cancellationToken);

    /// <summary>
    /// The leader's read barrier (ReadIndex, thesis §6.4); returns the read index, the commit index when it was asked,
    /// which this member has applied by the time it returns.
    /// </summary>
    /// <exception cref="NotLeaderException">This member does not lead.</exception>
    /// <exception cref="QuorumUnavailableException">No majority confirmed the lead in time.</exception>
    Task<ulong> ReadBarrierAsync(CancellationToken cancellationToken);

    /// <summary>Completes once this member has applied everything up to <paramref name="index"/>.</summary>
    Task WaitForAppliedAsync(ulong index, CancellationToken cancellationToken);
}
