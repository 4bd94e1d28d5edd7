namespace HsmVault.Consensus;

/// <summary>
/// How a follower asks the leader to do what only a leader can (<see cref="LeaderRouter"/>): commit a command, or
/// give a read index (thesis §6.4). Implemented over the peer API in the daemon, by fakes and the simulator in tests.
/// </summary>
/// <remarks>
/// Failures are typed, because the router's safety rests on them: <see cref="NotLeaderException"/> only when the
/// receiver certainly did nothing (it does not lead and proposed nothing, or the request never left), so that asking
/// again is safe; <see cref="LeaderUnreachableException"/> when the leader could not be asked or could not reach a
/// majority; <see cref="OutcomeUnknownException"/> for any other failure. Each exception's message says what the leader
/// answered (for the daemon: the gRPC status).
/// </remarks>
public interface ILeaderLink
{
    /// <summary>Has <paramref name="leader"/> commit <paramref name="command"/>; returns the result of applying it there.</summary>
    /// <exception cref="NotLeaderException">The receiver does not lead and proposed nothing.</exception>
    /// <exception cref="LeaderUnreachableException">No answer, or no majority at the leader: the command may have committed.</exception>
    /// <exception cref="OutcomeUnknownException">Any other failure: the command may have committed.</exception>
    Task<byte[]> ForwardAsync(string leader, byte[] command, DateTimeOffset deadline, CancellationToken cancellationToken);

    /// <summary>
    /// Asks <paramref name="leader"/> to confirm with a majority that it still leads; returns its read index (its commit
    /// index when asked), which covers every write acknowledged before the call.
    /// </summary>
    /// <exception cref="NotLeaderException">The receiver does not lead.</exception>
    /// <exception cref="LeaderUnreachableException">No answer, or no majority confirmed the leader.</exception>
    /// <exception cref="OutcomeUnknownException">Any other failure.</exception>
    Task<ulong> ReadIndexAsync(string leader, DateTimeOffset deadline, CancellationToken cancellationToken);
}
