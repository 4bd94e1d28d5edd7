namespace HsmVault.Consensus;

/// <summary>
/// Writes and read barriers from any member. On the leader they go to the local <see cref="IRaftMember"/> (the
/// daemon's <see cref="RaftHost"/>); a follower forwards writes to the leader over an <see cref="ILeaderLink"/> and
/// asks it for a read index (thesis §6.4), then waits until it has applied that far itself. A member that cannot
/// reach a majority refuses rather than answer from stale state. The leader's side of both calls is here too
/// (<see cref="AcceptForwardedAsync"/>, <see cref="AcceptReadIndexAsync"/>), so that the daemon's peer service and
/// the simulator's link answer a follower alike. Commands and results are opaque bytes.
/// </summary>
/// <remarks>
/// A write is retried only when it certainly did not happen (no leader known yet, or the receiver refused it as not
/// the leader before proposing). A write whose fate is unknown (a timeout, a lost connection, a leader change
/// mid-commit) throws <see cref="OutcomeUnknownException"/> and is never blindly resent: for the vault, resending a
/// charge could spend a second guess. A read barrier has no effect, so it is asked again until the deadline.
/// </remarks>
public sealed class LeaderRouter
{
    private static readonly TimeSpan RetryPause = TimeSpan.FromMilliseconds(25);

    private readonly IRaftMember _host;
    private readonly ILeaderLink _link;
    private readonly TimeSpan _timeout;
    private readonly TimeProvider _time;

    /// <summary>Creates a router for <paramref name="host"/>'s member.</summary>
    /// <param name="host">This member's Raft (its <see cref="RaftHost"/>).</param>
    /// <param name="link">How to reach the leader when this member does not lead.</param>
    /// <param name="timeout">How long a write or read barrier may take in all, retries included.</param>
    /// <param name="time">Clock for deadlines and the pauses between retries.</param>
    public LeaderRouter(IRaftMember host, ILeaderLink link, TimeSpan timeout, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(host);
        ArgumentNullException.ThrowIfNull(link);
        ArgumentNullException.ThrowIfNull(time);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(timeout, TimeSpan.Zero);
        _host = host;
        _link = link;
        _timeout = timeout;
        _time = time;
    }

    /// <summary>Commits <paramref name="command"/> through the leader; returns the result of applying it there.</summary>
    /// <exception cref="OutcomeUnknownException">The command reached a leader and may or may not have taken effect.</exception>
    /// <exception cref="QuorumUnavailableException">No leader could be reached before the deadline; nothing was proposed.</exception>
    public async Task<byte[]> SubmitAsync(byte[] command, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(command);
        var deadline = _time.GetUtcNow() + _timeout;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (_host.IsLeader)
            {
                try
                {
                    return await _host.ProposeAsync(command, cancellationToken);
                }
                catch (NotLeaderException e) when (e.NothingProposed)
                {
                    // The lead moved between the check and the proposal, and the core refused it: nothing was proposed,
                    // so it goes to the leader like any other write (below, or at the next round).
                }
                catch (Exception e) when (e is NotLeaderException or QuorumUnavailableException)
                {
                    throw new OutcomeUnknownException("this member lost its majority while committing the write; it may or may not have taken effect, so check before retrying", e);
                }
            }

            if (_host.LeaderId is { } leader && leader != _host.Id)
            {
                try
                {
                    return await _link.ForwardAsync(leader, command, deadline, cancellationToken);
                }
                catch (NotLeaderException)
                {
                    // The receiver was no longer the leader and proposed nothing: safe to retry.
                }
                catch (Exception e) when (e is LeaderUnreachableException or OutcomeUnknownException)
                {
                    throw new OutcomeUnknownException($"the leader ({leader}) did not confirm the write ({e.Message}); it may or may not have taken effect", e);
                }
            }

            await PauseOrGiveUpAsync(deadline, cancellationToken);
        }
    }

    /// <summary>
    /// A linearizable read barrier from any member: completes once this member has applied everything committed
    /// before the call, as confirmed by a leader with a majority.
    /// </summary>
    /// <exception cref="QuorumUnavailableException">No leader with a majority confirmed in time, or this member did not catch up in time.</exception>
    public async Task ReadBarrierAsync(CancellationToken cancellationToken)
    {
        var deadline = _time.GetUtcNow() + _timeout;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            try
            {
                if (_host.IsLeader)
                {
                    await _host.ReadBarrierAsync(cancellationToken);
                    return;
                }

                if (_host.LeaderId is { } leader && leader != _host.Id)
                {
                    var index = await _link.ReadIndexAsync(leader, deadline, cancellationToken);
                    using var timeout = new CancellationTokenSource(Remaining(deadline), _time);
                    using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
                    await _host.WaitForAppliedAsync(index, linked.Token);
                    return;
                }
            }
            catch (NotLeaderException)
            {
                // Leadership moved between the check and the barrier: ask again.
            }
            catch (QuorumUnavailableException e)
            {
                throw new QuorumUnavailableException("this member cannot confirm with a majority that its state is current", e);
            }
            catch (LeaderUnreachableException)
            {
                // The member we asked is gone or has no majority (it may have crashed and the others not yet
                // elected anyone). A read barrier has no effect, so asking again until the deadline is always safe.
            }
            catch (OutcomeUnknownException e)
            {
                throw new QuorumUnavailableException($"this member cannot confirm with the leader that its state is current (leader answered {e.Message})", e);
            }
            catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
            {
                throw new QuorumUnavailableException("this member did not catch up with the leader's commit index in time", e);
            }

            await PauseOrGiveUpAsync(deadline, cancellationToken);
        }
    }

    /// <summary>
    /// The leader's half of <see cref="ILeaderLink.ForwardAsync"/>: commits a command another member forwarded and
    /// returns the result of applying it here.
    /// </summary>
    /// <exception cref="NotLeaderException">This member does not lead and proposed nothing: the sender may ask again.</exception>
    /// <exception cref="LeaderUnreachableException">Leadership moved or no majority answered while committing: the command may or may not commit.</exception>
    public async Task<byte[]> AcceptForwardedAsync(byte[] command, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(command);
        if (!_host.IsLeader)
        {
            throw NotLeader();
        }

        try
        {
            return await _host.ProposeAsync(command, cancellationToken);
        }
        catch (NotLeaderException e) when (e.NothingProposed)
        {
            // The lead moved between the check and the proposal, and the core refused it: the sender may ask again.
            throw NotLeader();
        }
        catch (NotLeaderException e)
        {
            // Proposed, then overwritten here: another leader that holds the entry may still commit it. The sender
            // cannot tell this from a lost answer, so it is not "nothing happened" to it.
            throw new LeaderUnreachableException($"leadership changed while committing; outcome unknown: {e.Message}", e);
        }
        catch (QuorumUnavailableException e)
        {
            throw new LeaderUnreachableException(e.Message, e);
        }
    }

    /// <summary>
    /// The leader's half of <see cref="ILeaderLink.ReadIndexAsync"/>: confirms the lead with a majority and returns the
    /// read index, which covers every write acknowledged before the call; the follower serves once it applied as far.
    /// </summary>
    /// <exception cref="NotLeaderException">This member does not lead.</exception>
    /// <exception cref="LeaderUnreachableException">No majority confirmed the lead in time.</exception>
    public async Task<ulong> AcceptReadIndexAsync(CancellationToken cancellationToken)
    {
        if (!_host.IsLeader)
        {
            throw NotLeader();
        }

        try
        {
            return await _host.ReadBarrierAsync(cancellationToken);
        }
        catch (NotLeaderException)
        {
            throw NotLeader();
        }
        catch (QuorumUnavailableException e)
        {
            throw new LeaderUnreachableException(e.Message, e);
        }
    }

    private NotLeaderException NotLeader() =>
        new(_host.LeaderId, $"'{_host.Id}' is not the leader (leader: {_host.LeaderId ?? "unknown"})") { NothingProposed = true };

    private async Task PauseOrGiveUpAsync(DateTimeOffset deadline, CancellationToken cancellationToken)
    {
        if (_time.GetUtcNow() >= deadline)
        {
            throw new QuorumUnavailableException("no leader: this member cannot reach a majority of the fleet");
        }

        await Task.Delay(RetryPause, _time, cancellationToken);
    }

    private TimeSpan Remaining(DateTimeOffset deadline)
    {
        var left = deadline - _time.GetUtcNow();
        return left > TimeSpan.Zero ? left : TimeSpan.FromMilliseconds(1);
    }
}
