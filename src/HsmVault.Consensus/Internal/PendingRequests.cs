namespace HsmVault.Consensus.Internal;

/// <summary>
/// What a member's callers wait on, and how its Readies answer them: proposals by the log index they took, ReadIndex
/// requests by id, and waiters for an applied index. The one place where an applied entry becomes its proposer's
/// answer (or a refusal, when another leader's entry took the index): <see cref="RaftHost"/> uses it on its loop,
/// the deterministic simulator between its steps, so that the simulated <see cref="LeaderRouter"/> is answered as
/// the daemon's is.
/// </summary>
/// <remarks>
/// Proposals and reads are touched only by whoever drives the core (the host's loop). Applied waiters may be added
/// from any thread, so they sit behind a lock. The host's completions run their continuations asynchronously
/// (<paramref name="completions"/>), so that a caller's code never runs inside a Ready; the simulator's do not, because
/// it posts every continuation to its own queue, which it runs between its steps.
/// </remarks>
/// <param name="leaderId">The leader the member knows of, for refusals.</param>
/// <param name="nextReadId">A new ReadIndex request id, distinct from any other the core is asked.</param>
/// <param name="completions">How the completions it creates run their continuations.</param>
internal sealed class PendingRequests(Func<string?> leaderId, Func<ulong> nextReadId, TaskCreationOptions completions) : IReadyObserver
{
    private readonly Dictionary<ulong, (ulong Term, TaskCompletionSource<byte[]> Completion)> _proposals = [];
    private readonly Dictionary<ulong, TaskCompletionSource<ulong>> _reads = [];
    private readonly Lock _appliedLock = new();
    private readonly List<(ulong Index, TaskCompletionSource Completion)> _appliedWaiters = [];
    private const string Overwritten = "Leadership changed before the command committed; it was not applied.";

    private ulong _applied;

    /// <summary>A completion for <see cref="Propose"/>.</summary>
    public TaskCompletionSource<byte[]> NewProposal() => new(completions);

    /// <summary>A completion for <see cref="ReadIndex"/>.</summary>
    public TaskCompletionSource<ulong> NewRead() => new(completions);

    /// <summary>
    /// Proposes <paramref name="command"/> at <paramref name="node"/>; <paramref name="completion"/> gets the result of
    /// applying it here, or <see cref="NotLeaderException"/> if this member does not lead or the entry is overwritten.
    /// </summary>
    public void Propose(RaftNode node, byte[] command, TaskCompletionSource<byte[]> completion)
    {
        if (node.Propose(command) is not { } ticket)
        {
            completion.TrySetException(new NotLeaderException(node.LeaderId, NotLeaderMessage(node.LeaderId)) { NothingProposed = true });
            return;
        }

        if (_proposals.Remove(ticket.Index, out var overwritten))
        {
            // This member led before, proposed at this index, lost its lead and leads again: the index now holds
            // the new entry, so the earlier one was truncated and never committed (a committed entry would be in
            // this leader's log at that index, Raft §5.4).
            overwritten.Completion.TrySetException(new NotLeaderException(node.LeaderId, Overwritten));
        }

        _proposals[ticket.Index] = (ticket.Term, completion);
    }

    /// <summary>
    /// Asks <paramref name="node"/> for a read index (thesis §6.4); <paramref name="completion"/> gets the index once a
    /// majority confirmed the lead and this member applied as far, or <see cref="NotLeaderException"/>.
    /// </summary>
    public void ReadIndex(RaftNode node, TaskCompletionSource<ulong> completion)
    {
        var id = nextReadId();
        if (node.ReadIndex(id))
        {
            _reads[id] = completion;
        }
        else
        {
            completion.TrySetException(new NotLeaderException(node.LeaderId, NotLeaderMessage(node.LeaderId)));
        }
    }

    /// <summary>Completes once <see cref="ReleaseApplied"/> has reported <paramref name="index"/> applied. Thread-safe.</summary>
    public Task WaitForAppliedAsync(ulong index, CancellationToken cancellationToken)
    {
        TaskCompletionSource completion;
        lock (_appliedLock)
        {
            if (_applied >= index)
            {
                return Task.CompletedTask;
            }

            completion = new TaskCompletionSource(completions);
            _appliedWaiters.Add((index, completion));
        }

        return completion.Task.WaitAsync(cancellationToken);
    }

    /// <summary>
    /// This member has applied up to <paramref name="applied"/>: completes the waiters it covers. A waiter whose caller
    /// gave up stays listed until then: it waits for an index some leader had applied, which this member reaches
    /// unless it stops.
    /// </summary>
    public void ReleaseApplied(ulong applied)
    {
        lock (_appliedLock)
        {
            _applied = Math.Max(_applied, applied);
            for (var i = _appliedWaiters.Count - 1; i >= 0; i--)
            {
                if (_appliedWaiters[i].Index <= _applied)
                {
                    _appliedWaiters[i].Completion.TrySetResult();
                    _appliedWaiters.RemoveAt(i);
                }
            }
        }
    }

    /// <summary>
    /// Waits for <paramref name="completion"/> as long as the member lets a proposal wait for a majority: past
    /// <paramref name="timeout"/> the command may still commit, so the caller is told that no majority answered.
    /// </summary>
    /// <exception cref="QuorumUnavailableException">No answer within <paramref name="timeout"/>.</exception>
    public static async Task<byte[]> AwaitCommitAsync(
        TaskCompletionSource<byte[]> completion, TimeSpan timeout, TimeProvider time, CancellationToken cancellationToken)
    {
        try
        {
            return await completion.Task.WaitAsync(timeout, time, cancellationToken);
        }
        catch (TimeoutException exception)
        {
            throw new QuorumUnavailableException("The command was not committed in time; it may still commit later.", exception);
        }
    }

    /// <summary>Waits for a read barrier's <paramref name="completion"/> at most <paramref name="timeout"/>.</summary>
    /// <exception cref="QuorumUnavailableException">No majority confirmed the lead within <paramref name="timeout"/>.</exception>
    public static async Task<ulong> AwaitReadAsync(
        TaskCompletionSource<ulong> completion, TimeSpan timeout, TimeProvider time, CancellationToken cancellationToken)
    {
        try
        {
            return await completion.Task.WaitAsync(timeout, time, cancellationToken);
        }
        catch (TimeoutException exception)
        {
            throw new QuorumUnavailableException("No majority confirmed this member's leadership in time.", exception);
        }
    }

    /// <summary>Fails every proposal, read and applied-index waiter still waiting (the member stops, or its loop failed).</summary>
    public void FailAll(Exception exception)
    {
        lock (_appliedLock)
        {
            foreach (var waiter in _appliedWaiters)
            {
                waiter.Completion.TrySetException(exception);
            }

            _appliedWaiters.Clear();
        }

        foreach (var proposal in _proposals.Values)
        {
            proposal.Completion.TrySetException(exception);
        }

        foreach (var read in _reads.Values)
        {
            read.TrySetException(exception);
        }

        _proposals.Clear();
        _reads.Clear();
    }

    /// <inheritdoc/>
    public void SnapshotRestored(RaftSnapshot snapshot)
    {
        foreach (var index in _proposals.Keys.Where(k => k <= snapshot.Index).ToArray())
        {
            _proposals.Remove(index, out var proposal);

            // A snapshot jumped over the entry: we cannot tell whether ours or another leader's committed.
            proposal.Completion.TrySetException(new QuorumUnavailableException(
                "The command's outcome is unknown: this member caught up by snapshot."));
        }
    }

    /// <inheritdoc/>
    public void Applied(LogEntry entry, byte[]? result)
    {
        if (!_proposals.Remove(entry.Index, out var proposal))
        {
            return;
        }

        if (proposal.Term == entry.Term && result is not null)
        {
            proposal.Completion.TrySetResult(result);
        }
        else
        {
            // Another leader's entry took this index: ours was overwritten and never applied (Raft §5.3).
            proposal.Completion.TrySetException(new NotLeaderException(leaderId(), Overwritten));
        }
    }

    /// <inheritdoc/>
    public void ReadReady(ReadState read)
    {
        if (_reads.Remove(read.RequestId, out var completion))
        {
            completion.TrySetResult(read.Index);
        }
    }

    /// <inheritdoc/>
    public void ReadDropped(ulong requestId)
    {
        if (_reads.Remove(requestId, out var completion))
        {
            completion.TrySetException(new NotLeaderException(leaderId(), "This member stopped leading before the read was confirmed."));
        }
    }

    private static string NotLeaderMessage(string? leader) => leader is not null
        ? $"This member is not the leader; {leader} is."
        : "This member is not the leader, and no leader is known (an election may be under way).";
}
