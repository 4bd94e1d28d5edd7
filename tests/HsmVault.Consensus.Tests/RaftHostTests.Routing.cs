namespace HsmVault.Consensus.Tests;

/// <summary>
/// <see cref="LeaderRouter"/> over real hosts: the link between members is <see cref="HostLink"/>, which answers as the
/// daemon's peer service does, with faults injected around it where a test needs one.
/// </summary>
public sealed partial class RaftHostTests
{
    [Fact]
    public async Task Router_SubmitOnFollower_ForwardsToTheLeaderAndReturnsItsResult()
    {
        var (hosts, machines) = await StartFleetAsync(3);
        var (leader, follower) = await LeaderAndFollowerAsync(hosts);
        var router = new LeaderRouter(follower, new HostLink(hosts), Patience, TimeProvider.System);

        var result = await router.SubmitAsync(CounterStateMachine.Charge(1), CancellationToken.None);

        Assert.Equal([1, 1], result);
        Assert.Equal(1, machines[hosts.IndexOf(leader)].Count(1));
        await WaitUntilAsync(() => machines.All(m => m.Count(1) == 1));
    }

    [Fact]
    public async Task Router_LinkRefusesAsNotLeader_AsksAgainAndCommitsOnce()
    {
        var (hosts, machines) = await StartFleetAsync(3);
        var (_, follower) = await LeaderAndFollowerAsync(hosts);
        var link = new FaultyLink(new HostLink(hosts)) { RefusalsBeforeForwarding = 2 };
        var router = new LeaderRouter(follower, link, Patience, TimeProvider.System);

        var result = await router.SubmitAsync(CounterStateMachine.Charge(2), CancellationToken.None);

        Assert.Equal([1, 1], result);
        Assert.Equal(3, link.Forwards);
        await WaitUntilAsync(() => machines.All(m => m.Count(2) == 1));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Router_LeaderCommitsButTheAnswerIsLost_ReportsUnknownOutcomeAndNeverResends(bool unreachable)
    {
        var (hosts, machines) = await StartFleetAsync(3);
        var (_, follower) = await LeaderAndFollowerAsync(hosts);
        var link = new FaultyLink(new HostLink(hosts)) { LoseAnswers = true, LostAsUnreachable = unreachable };
        var router = new LeaderRouter(follower, link, Patience, TimeProvider.System);

        var exception = await Assert.ThrowsAsync<OutcomeUnknownException>(
            () => router.SubmitAsync(CounterStateMachine.Charge(3), CancellationToken.None));

        Assert.Contains("may or may not have taken effect", exception.Message, StringComparison.Ordinal);
        Assert.Equal(1, link.Forwards);
        // It did commit, exactly once: a resend would have charged twice.
        await WaitUntilAsync(() => machines.All(m => m.Count(3) == 1));
        await Task.Delay(100);
        Assert.All(machines, m => Assert.Equal(1, m.Count(3)));
    }

    [Fact]
    public async Task Router_NoLeaderAcceptsBeforeTheDeadline_RefusesHavingProposedNothing()
    {
        var (hosts, machines) = await StartFleetAsync(3);
        var (_, follower) = await LeaderAndFollowerAsync(hosts);
        var link = new FaultyLink(new HostLink(hosts)) { RefusalsBeforeForwarding = int.MaxValue };
        var router = new LeaderRouter(follower, link, TimeSpan.FromMilliseconds(300), TimeProvider.System);

        var exception = await Assert.ThrowsAsync<QuorumUnavailableException>(
            () => router.SubmitAsync(CounterStateMachine.Charge(4), CancellationToken.None));

        Assert.StartsWith("no leader", exception.Message, StringComparison.Ordinal);
        Assert.True(link.Forwards > 1, $"asked {link.Forwards} times");
        Assert.All(machines, m => Assert.Equal(0, m.Count(4)));
    }

    [Fact]
    public async Task Router_ReadBarrierOnFollower_WaitsUntilItHasAppliedTheLeadersIndex()
    {
        var (hosts, machines) = await StartFleetAsync(3);
        var (leader, follower) = await LeaderAndFollowerAsync(hosts);
        await leader.ProposeAsync(CounterStateMachine.Charge(5), CancellationToken.None);
        var leaderMachine = machines[hosts.IndexOf(leader)];
        // A leader one entry ahead of what it has applied yet: the follower must wait for that entry.
        var link = new FaultyLink(new HostLink(hosts)) { ReadIndexAhead = 1 };
        var router = new LeaderRouter(follower, link, Patience, TimeProvider.System);

        var barrier = router.ReadBarrierAsync(CancellationToken.None);
        await Task.Delay(200);
        Assert.False(barrier.IsCompleted);
        await leader.ProposeAsync(CounterStateMachine.Charge(5), CancellationToken.None);
        await barrier.WaitAsync(Patience);

        Assert.Equal(2, machines[hosts.IndexOf(follower)].Count(5));
        Assert.True(follower.Status!.AppliedIndex >= leaderMachine.AppliedIndex);
    }

    [Fact]
    public async Task Router_ReadBarrierWithTheLeaderUnreachableAtFirst_AsksAgain()
    {
        var (hosts, machines) = await StartFleetAsync(3);
        var (leader, follower) = await LeaderAndFollowerAsync(hosts);
        await leader.ProposeAsync(CounterStateMachine.Charge(6), CancellationToken.None);
        var link = new FaultyLink(new HostLink(hosts)) { UnreachableReads = 2 };
        var router = new LeaderRouter(follower, link, Patience, TimeProvider.System);

        await router.ReadBarrierAsync(CancellationToken.None);

        Assert.Equal(3, link.Reads);
        Assert.Equal(1, machines[hosts.IndexOf(follower)].Count(6));
    }

    [Fact]
    public async Task Router_ReadBarrierWhenTheLeaderFails_RefusesAtOnce()
    {
        var (hosts, machines) = await StartFleetAsync(3);
        var (_, follower) = await LeaderAndFollowerAsync(hosts);
        var link = new FaultyLink(new HostLink(hosts)) { FailReads = true };
        var router = new LeaderRouter(follower, link, Patience, TimeProvider.System);

        var exception = await Assert.ThrowsAsync<QuorumUnavailableException>(() => router.ReadBarrierAsync(CancellationToken.None));

        Assert.Contains("cannot confirm with the leader", exception.Message, StringComparison.Ordinal);
        Assert.Equal(1, link.Reads);
    }

    [Fact]
    public async Task Router_AcceptOnAFollower_RefusesAsNotLeaderHavingProposedNothing()
    {
        var (hosts, machines) = await StartFleetAsync(3);
        var (leader, follower) = await LeaderAndFollowerAsync(hosts);
        var router = new LeaderRouter(follower, new HostLink(hosts), Patience, TimeProvider.System);

        var forward = await Assert.ThrowsAsync<NotLeaderException>(
            () => router.AcceptForwardedAsync(CounterStateMachine.Charge(5), CancellationToken.None));
        await Assert.ThrowsAsync<NotLeaderException>(() => router.AcceptReadIndexAsync(CancellationToken.None));

        Assert.Equal(leader.Id, forward.LeaderId);
        await Task.Delay(100);
        Assert.All(machines, m => Assert.Equal(0, m.Count(5)));
    }

    [Fact]
    public async Task Router_SubmitOnAMemberThatStoppedLeadingJustBefore_ForwardsAndCommitsOnce()
    {
        var (hosts, machines) = await StartFleetAsync(3);
        var (leader, follower) = await LeaderAndFollowerAsync(hosts);
        // The router reads "leader" (as it may just before a member steps down), the core then refuses the proposal.
        var router = new LeaderRouter(new LeadingOnlyAtFirst(follower), new HostLink(hosts), Patience, TimeProvider.System);

        var result = await router.SubmitAsync(CounterStateMachine.Charge(7), CancellationToken.None);

        Assert.Equal([1, 1], result);
        Assert.Equal(1, machines[hosts.IndexOf(leader)].Count(7));
        await WaitUntilAsync(() => machines.All(m => m.Count(7) == 1));
    }

    [Fact]
    public async Task Router_AcceptOnAMemberThatStoppedLeadingJustBefore_RefusesAsNotLeaderHavingProposedNothing()
    {
        var (hosts, machines) = await StartFleetAsync(3);
        var (leader, follower) = await LeaderAndFollowerAsync(hosts);
        var router = new LeaderRouter(new LeadingOnlyAtFirst(follower), new HostLink(hosts), Patience, TimeProvider.System);

        // Not "outcome unknown": the sender may safely ask the leader.
        var refusal = await Assert.ThrowsAsync<NotLeaderException>(
            () => router.AcceptForwardedAsync(CounterStateMachine.Charge(6), CancellationToken.None));

        Assert.True(refusal.NothingProposed);
        Assert.Equal(leader.Id, refusal.LeaderId);
        await Task.Delay(100);
        Assert.All(machines, m => Assert.Equal(0, m.Count(6)));
    }

    [Fact]
    public async Task Router_AcceptReadIndexOnTheLeader_ReturnsAnIndexCoveringEarlierWrites()
    {
        var (hosts, machines) = await StartFleetAsync(3);
        var (leader, _) = await LeaderAndFollowerAsync(hosts);
        await leader.ProposeAsync(CounterStateMachine.Charge(6), CancellationToken.None);
        var appliedAfterTheWrite = machines[hosts.IndexOf(leader)].AppliedIndex;
        var router = new LeaderRouter(leader, new HostLink(hosts), Patience, TimeProvider.System);

        var index = await router.AcceptReadIndexAsync(CancellationToken.None);

        Assert.True(index >= appliedAfterTheWrite, $"read index {index} is below the write's {appliedAfterTheWrite}");
    }

    private static async Task<(RaftHost Leader, RaftHost Follower)> LeaderAndFollowerAsync(List<RaftHost> hosts)
    {
        var leader = await WaitForLeaderAsync(hosts);
        var follower = hosts.First(h => h != leader);
        await WaitUntilAsync(() => follower.LeaderId == leader.Id);
        return (leader, follower);
    }

    /// <summary>
    /// Reaches the named host in this process, whose router answers as it does behind the daemon's peer service
    /// (<see cref="LeaderRouter.AcceptForwardedAsync"/>, <see cref="LeaderRouter.AcceptReadIndexAsync"/>).
    /// </summary>
    private sealed class HostLink(List<RaftHost> hosts) : ILeaderLink
    {
        public Task<byte[]> ForwardAsync(string leader, byte[] command, DateTimeOffset deadline, CancellationToken cancellationToken) =>
            RouterOf(leader).AcceptForwardedAsync(command, cancellationToken);

        public Task<ulong> ReadIndexAsync(string leader, DateTimeOffset deadline, CancellationToken cancellationToken) =>
            RouterOf(leader).AcceptReadIndexAsync(cancellationToken);

        private LeaderRouter RouterOf(string id) => new(hosts.Single(h => h.Id == id), this, Patience, TimeProvider.System);
    }

    /// <summary>A member that reports leading the first time it is asked, as one may just before it steps down; otherwise <paramref name="inner"/>.</summary>
    private sealed class LeadingOnlyAtFirst(IRaftMember inner) : IRaftMember
    {
        private int _asked;

        public string Id => inner.Id;

        public bool IsLeader => Interlocked.Increment(ref _asked) == 1 || inner.IsLeader;

        public string? LeaderId => inner.LeaderId;

        public Task<byte[]> ProposeAsync(byte[] command, CancellationToken cancellationToken) => inner.ProposeAsync(command, cancellationToken);

        public Task<ulong> ReadBarrierAsync(CancellationToken cancellationToken) => inner.ReadBarrierAsync(cancellationToken);

        public Task WaitForAppliedAsync(ulong index, CancellationToken cancellationToken) => inner.WaitForAppliedAsync(index, cancellationToken);
    }

    /// <summary>A link with the faults a test asks for around <see cref="HostLink"/>; counts what it was asked.</summary>
    private sealed class FaultyLink(ILeaderLink inner) : ILeaderLink
    {
        private int _forwards;
        private int _reads;

        /// <summary>Refuse this many forwards as not the leader, having sent nothing.</summary>
        public int RefusalsBeforeForwarding { get; init; }

        /// <summary>Forward, then lose the answer.</summary>
        public bool LoseAnswers { get; init; }

        /// <summary>Report a lost answer as unreachable (else as any other failure).</summary>
        public bool LostAsUnreachable { get; init; }

        /// <summary>Answer this many read index requests as unreachable.</summary>
        public int UnreachableReads { get; init; }

        /// <summary>Fail every read index request with an unexpected answer.</summary>
        public bool FailReads { get; init; }

        /// <summary>Added to the leader's read index.</summary>
        public ulong ReadIndexAhead { get; init; }

        public int Forwards => Volatile.Read(ref _forwards);

        public int Reads => Volatile.Read(ref _reads);

        public async Task<byte[]> ForwardAsync(string leader, byte[] command, DateTimeOffset deadline, CancellationToken cancellationToken)
        {
            if (Interlocked.Increment(ref _forwards) <= RefusalsBeforeForwarding)
            {
                throw new NotLeaderException(null, "refused before proposing");
            }

            var result = await inner.ForwardAsync(leader, command, deadline, cancellationToken);
            if (LoseAnswers)
            {
                throw LostAsUnreachable ? new LeaderUnreachableException("connection lost") : new OutcomeUnknownException("deadline exceeded");
            }

            return result;
        }

        public async Task<ulong> ReadIndexAsync(string leader, DateTimeOffset deadline, CancellationToken cancellationToken)
        {
            var read = Interlocked.Increment(ref _reads);
            if (read <= UnreachableReads)
            {
                throw new LeaderUnreachableException("connection refused");
            }

            if (FailReads)
            {
                throw new OutcomeUnknownException("PermissionDenied: not a member");
            }

            return await inner.ReadIndexAsync(leader, deadline, cancellationToken) + ReadIndexAhead;
        }
    }
}
