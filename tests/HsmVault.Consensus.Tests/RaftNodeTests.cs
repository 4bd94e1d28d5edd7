namespace HsmVault.Consensus.Tests;

/// <summary>Unit tests of the Raft core in etcd-raft's manner: small fleets, synchronous delivery, crafted messages.</summary>
public sealed class RaftNodeTests
{
    private const int Election = TestNetwork.ElectionTicks;

    [Fact]
    public void SingleMember_ElectsItself_AndCommitsAProposal()
    {
        var net = new TestNetwork(1);
        net.Elect("n1");

        var ticket = net.Propose("n1", CounterStateMachine.Charge(3));

        Assert.Equal(ticket.Index, net.Node("n1").CommitIndex);
        Assert.Equal([1, 1], net.Peers["n1"].Results[ticket.Index]);
    }

    [Fact]
    public void ThreeMembers_ElectOneLeader_AndReplicateToAll()
    {
        var net = new TestNetwork(3);
        net.Elect("n1");
        var ticket = net.Propose("n1", CounterStateMachine.Charge(1));
        net.TickAll(); // heartbeats carry the new commit index to the followers

        Assert.All(net.Ids, id =>
        {
            Assert.Equal(net.Node("n1").Term, net.Node(id).Term);
            Assert.Equal("n1", net.Node(id).LeaderId);
            Assert.Equal(ticket.Index, net.Node(id).CommitIndex);
            Assert.Equal([1, 1], net.Peers[id].Results[ticket.Index]);
        });
        Assert.Single(net.Ids, id => net.Node(id).Role == RaftRole.Leader);
    }

    [Fact]
    public void ChargeLimit_TenthChargeSucceeds_EleventhIsRefused()
    {
        var net = new TestNetwork(3);
        net.Elect("n1");
        for (var i = 1; i <= 10; i++)
        {
            var ticket = net.Propose("n1", CounterStateMachine.Charge(0));
            Assert.Equal([1, (byte)i], net.Peers["n1"].Results[ticket.Index]);
        }

        var refused = net.Propose("n1", CounterStateMachine.Charge(0));
        Assert.Equal([0, CounterStateMachine.Limit], net.Peers["n1"].Results[refused.Index]);
    }

    [Fact]
    public void PreVote_PartitionedMemberRejoining_DoesNotDisruptStableLeader()
    {
        var net = new TestNetwork(3);
        net.Elect("n1");
        var term = net.Node("n1").Term;

        net.Isolate("n3");
        net.Tick("n3", 10 * Election);

        // Pre-vote (thesis §9.6): a member that cannot win does not raise its term while cut off...
        Assert.Equal(term, net.Node("n3").Term);
        Assert.Equal(RaftRole.PreCandidate, net.Node("n3").Role);

        net.Heal();
        net.TickAll(3 * Election);

        // ...so on rejoining it neither deposes the leader nor bumps everyone's term.
        Assert.Equal(RaftRole.Leader, net.Node("n1").Role);
        Assert.All(net.Ids, id => Assert.Equal(term, net.Node(id).Term));
        Assert.Equal("n1", net.Node("n3").LeaderId);
    }

    [Fact]
    public void CheckQuorum_IsolatedLeader_StepsDownWithinTwoElectionTimeouts()
    {
        var net = new TestNetwork(3);
        net.Elect("n1");

        // Check-quorum looks back over whole election-timeout intervals, so it notices within two of them.
        net.Isolate("n1");
        net.Tick("n1", 2 * Election);

        Assert.Equal(RaftRole.Follower, net.Node("n1").Role);
        Assert.Null(net.Node("n1").Propose(CounterStateMachine.Charge(0)));
    }

    [Fact]
    public void Election_MajorityHasNewerLog_CandidateWithStaleLogCannotWin()
    {
        var net = new TestNetwork(3, id => id == "n1" ? State(1, 1) : State(2, 1, 1, 2));

        net.Tick("n1", 10 * Election);
        Assert.NotEqual(RaftRole.Leader, net.Node("n1").Role);
        Assert.Equal(2UL, net.Node("n1").Term); // it learned the newer term from the refusals, nothing more

        net.Elect("n2");
        net.TickAll();
        Assert.Equal(net.Node("n2").LastIndex, net.Node("n1").LastIndex);
    }

    [Fact]
    public void Replication_FollowerWithConflictingEntries_IsOverwrittenSkippingAWholeTermPerRejection()
    {
        var net = new TestNetwork(3, id => id switch
        {
            "n1" => State(3, 1, 1, 3, 3),
            "n2" => State(2, 1, 1, 2, 2, 2, 2), // uncommitted entries of term 2 that never made it
            _ => State(3, 1, 1, 3),
        });

        net.Elect("n1");
        net.TickAll();

        var leader = net.Node("n1");
        var follower = net.Node("n2");
        Assert.Equal(leader.LastIndex, follower.LastIndex);
        for (ulong i = 1; i <= leader.LastIndex; i++)
        {
            Assert.Equal(leader.TryGetTerm(i), follower.TryGetTerm(i));
        }

        // Fast backtracking: the follower's conflict hint (term 2 starts at 3) costs one rejection, not four.
        var rejections = net.Delivered.OfType<AppendEntriesResponse>().Count(m => m.From == "n2" && !m.Success);
        Assert.Equal(1, rejections);
    }

    [Fact]
    public void Commit_EntryOfEarlierTermOnAMajority_IsNotCommittedByCounting_Figure8()
    {
        var net = new TestNetwork(3, id => id == "n1" ? State(2, 1, 2) with { HardState = new HardState(2, null, 1) } : State(1, 1));
        net.Isolate("n1");
        ElectByCraftedVotes(net, "n1");
        var leader = net.Node("n1");
        Assert.Equal(3UL, leader.LastIndex); // entry 2 from term 2, then the term-3 no-op

        // Entry 2 (term 2) is now on n1 and n2, a majority — Raft §5.4.2 forbids committing it by counting.
        net.StepOnly(new AppendEntriesResponse("n2", "n1", leader.Term, true, 2, 0, 0, 0, 0));
        Assert.Equal(1UL, leader.CommitIndex);

        // Once the leader's own-term entry reaches a majority, everything before it commits with it.
        net.StepOnly(new AppendEntriesResponse("n2", "n1", leader.Term, true, 3, 0, 0, 0, 0));
        Assert.Equal(3UL, leader.CommitIndex);
    }

    [Fact]
    public void Snapshot_FollowerBehindCompactedLog_CatchesUpByInstallSnapshot()
    {
        var net = new TestNetwork(3);
        net.Elect("n1");
        net.Isolate("n3");
        for (var i = 0; i < 12; i++)
        {
            net.Propose("n1", CounterStateMachine.Charge(i % 3));
        }

        var snapshot = net.TakeSnapshot("n1");
        net.Propose("n1", CounterStateMachine.Charge(5));

        net.Heal();
        net.TickAll(Election);

        Assert.Contains(net.Delivered, m => m is InstallSnapshotRequest s && s.To == "n3" && s.Snapshot.Index == snapshot.Index);
        Assert.Equal(net.Node("n1").LastIndex, net.Node("n3").LastIndex);
        Assert.Equal(net.Peers["n1"].StateMachine.Chain, net.Peers["n3"].StateMachine.Chain);
        Assert.Equal(4, net.Peers["n3"].StateMachine.Count(0));
    }

    [Fact]
    public void Snapshot_WipedMember_CatchesUpAndLeavesTheHighWaterMarkBehind()
    {
        var net = new TestNetwork(3);
        net.Elect("n1");
        for (var i = 0; i < 6; i++)
        {
            net.Propose("n1", CounterStateMachine.Charge(1));
        }

        net.TakeSnapshot("n1");
        net.TickAll();

        net.Crash("n3");
        net.Peers["n3"].Storage = new MemoryRaftStorage();
        net.Peers["n3"].StateMachine = new CounterStateMachine();
        net.Start("n3");
        Assert.True(net.Node("n3").IsBehindHighWaterMark);

        net.TickAll(3);

        Assert.False(net.Node("n3").IsBehindHighWaterMark);
        Assert.Equal(6, net.Peers["n3"].StateMachine.Count(1));
        Assert.Equal(net.Node("n1").LastIndex, net.Node("n3").LastIndex);
    }

    [Fact]
    public void ReadIndex_LeaderWithQuorum_ConfirmsAtTheCommitIndex()
    {
        var net = new TestNetwork(3);
        net.Elect("n1");
        net.Propose("n1", CounterStateMachine.Charge(2));

        Assert.True(net.Node("n1").ReadIndex(42));
        net.Pump();

        Assert.Equal([new ReadState(42, net.Node("n1").CommitIndex)], net.Peers["n1"].ReadStates);
        Assert.False(net.Node("n2").ReadIndex(43));
    }

    [Fact]
    public void ReadIndex_IsolatedLeader_NeverConfirms_AndDropsTheReadWhenItStepsDown()
    {
        var net = new TestNetwork(3);
        net.Elect("n1");
        net.Isolate("n1");

        Assert.True(net.Node("n1").ReadIndex(7));
        net.Tick("n1", 2 * Election);

        Assert.Empty(net.Peers["n1"].ReadStates);
        Assert.Equal([7UL], net.Peers["n1"].DroppedReads);
    }

    [Fact]
    public void ReadIndex_NewLeader_WaitsUntilItsNoOpCommits()
    {
        var net = new TestNetwork(3, id => id == "n1" ? State(2, 1, 2) with { HardState = new HardState(2, null, 1) } : State(1, 1));
        net.Isolate("n1");
        ElectByCraftedVotes(net, "n1");
        var leader = net.Node("n1");
        var peer = net.Peers["n1"];
        peer.Sent.Clear();

        Assert.True(leader.ReadIndex(5));
        net.Pump();
        Assert.DoesNotContain(peer.Sent, m => m is AppendEntriesRequest { ReadSequence: > 0 });

        net.StepOnly(new AppendEntriesResponse("n2", "n1", leader.Term, true, 3, 0, 0, 0, 0));
        var heartbeat = Assert.Single(peer.Sent.OfType<AppendEntriesRequest>(), m => m.To == "n2" && m.ReadSequence > 0);
        Assert.Empty(peer.ReadStates);

        net.StepOnly(new AppendEntriesResponse("n2", "n1", leader.Term, true, 3, 0, 0, 0, heartbeat.ReadSequence));
        Assert.Equal([new ReadState(5, 3)], peer.ReadStates);
    }

    [Fact]
    public void RollbackGuard_DiskRestoredFromOldCopy_KeepsTermAndVote_AndRefusesCandidatesBelowTheMark()
    {
        var net = new TestNetwork(3);
        net.Elect("n1");
        var backup = net.Peers["n3"].Storage.CloneDurable();
        for (var i = 0; i < 3; i++)
        {
            net.Propose("n1", CounterStateMachine.Charge(4));
        }

        net.TickAll();
        var mark = net.Peers["n3"].Mark!;
        Assert.Equal(net.Node("n1").LastIndex, mark.Index);

        net.Crash("n3");
        net.Peers["n3"].Storage = backup;
        net.Peers["n3"].StateMachine = new CounterStateMachine();
        net.Start("n3");
        var node = net.Node("n3");

        Assert.True(node.RollbackDetected);
        Assert.True(node.IsBehindHighWaterMark);
        Assert.Equal(mark.Term, node.Term);

        // It does not campaign while behind its mark...
        net.Isolate("n3");
        net.Peers["n3"].Sent.Clear();
        net.Tick("n3", 5 * Election);
        Assert.DoesNotContain(net.Peers["n3"].Sent, m => m is PreVoteRequest or VoteRequest);

        // ...and refuses a candidate whose log is behind what it acknowledged, even though that log is
        // ahead of its own rolled-back one.
        var staleCandidate = new VoteRequest("n2", "n3", mark.Term + 1, node.LastIndex + 1, mark.IndexTerm);
        net.StepOnly(staleCandidate);
        Assert.Contains(net.Peers["n3"].Sent, m => m is VoteResponse { Granted: false, To: "n2" });

        var upToDateCandidate = new VoteRequest("n2", "n3", mark.Term + 1, mark.Index, mark.IndexTerm);
        net.StepOnly(upToDateCandidate);
        Assert.Contains(net.Peers["n3"].Sent, m => m is VoteResponse { Granted: true, To: "n2" });
    }

    [Fact]
    public void RollbackGuard_CaughtUpMember_VotesAndCampaignsAgain()
    {
        var net = new TestNetwork(3);
        net.Elect("n1");
        var backup = net.Peers["n3"].Storage.CloneDurable();
        net.Propose("n1", CounterStateMachine.Charge(4));
        net.TickAll();

        net.Crash("n3");
        net.Peers["n3"].Storage = backup;
        net.Peers["n3"].StateMachine = new CounterStateMachine();
        net.Start("n3");
        Assert.True(net.Node("n3").IsBehindHighWaterMark);

        net.TickAll(2);
        Assert.False(net.Node("n3").IsBehindHighWaterMark);
        Assert.Equal(1, net.Peers["n3"].StateMachine.Count(4));
    }

    [Fact]
    public void Step_AppendFromStaleTerm_AnswersWithTheNewerTerm_AndIgnoresStrangers()
    {
        var net = new TestNetwork(3, id => State(5, 1));
        var node = net.Node("n1");

        net.StepOnly(new AppendEntriesRequest("n2", "n1", 3, 1, 1, [], 1, 0));
        var answer = Assert.IsType<AppendEntriesResponse>(net.Peers["n1"].Sent[^1]);
        Assert.Equal(5UL, answer.Term);
        Assert.False(answer.Success);

        net.StepOnly(new AppendEntriesRequest("mallory", "n1", 9, 1, 1, [], 1, 0));
        Assert.Equal(5UL, node.Term);
    }

    [Fact]
    public void Restart_AfterCrash_KeepsCommittedEntriesAndTerm()
    {
        var net = new TestNetwork(3);
        net.Elect("n1");
        var ticket = net.Propose("n1", CounterStateMachine.Charge(6));
        net.TickAll();

        net.Crash("n2");
        net.Start("n2");

        Assert.Equal(ticket.Term, net.Node("n2").Term);
        Assert.True(net.Node("n2").LastIndex >= ticket.Index);
        Assert.Equal(ticket.Term, net.Node("n2").TryGetTerm(ticket.Index));
    }

    /// <summary>Makes an isolated member leader by feeding it crafted pre-vote and vote grants from n2.</summary>
    private static void ElectByCraftedVotes(TestNetwork net, string id)
    {
        var node = net.Node(id);
        for (var i = 0; i < 4 * Election && node.Role != RaftRole.PreCandidate; i++)
        {
            net.Tick(id);
        }

        Assert.Equal(RaftRole.PreCandidate, node.Role);
        net.StepOnly(new PreVoteResponse("n2", id, node.Term + 1, true));
        Assert.Equal(RaftRole.Candidate, node.Role);
        net.StepOnly(new VoteResponse("n2", id, node.Term, true));
        Assert.Equal(RaftRole.Leader, node.Role);
    }

    /// <summary>A member's durable state: its term and a log whose entries have the given terms.</summary>
    [Fact]
    public void LeaderReady_AppendsLeaveBeforeTheFsync_AndTheLeaderCountsItselfOnlyAfterAdvance()
    {
        var net = new TestNetwork(3);
        net.Elect("n1");
        var leader = net.Node("n1");

        var ticket = leader.Propose(CounterStateMachine.Charge(1))!.Value;
        var ready = leader.GetReady();

        // Thesis §10.2.1: the leader replicates while its own disk writes...
        Assert.True(ready.MustSync);
        Assert.Equal(ticket.Index, Assert.Single(ready.Entries).Index);
        Assert.Equal(["n2", "n3"], ready.EarlyMessages.Select(m => m.To).Order());
        Assert.All(ready.EarlyMessages, m => Assert.Equal(ticket.Index, Assert.Single(((AppendEntriesRequest)m).Entries).Index));
        Assert.DoesNotContain(ready.Messages, m => m is AppendEntriesRequest);

        // ...and a follower's acknowledgement alone, before the leader's fsync, commits nothing in a fleet of three...
        leader.Step(new AppendEntriesResponse("n2", "n1", leader.Term, true, ticket.Index, 0, 0, 0, 0));
        Assert.True(leader.CommitIndex < ticket.Index);

        // ...until the leader's own copy is durable (Advance) and counts as the second of three.
        leader.Advance();
        Assert.Equal(ticket.Index, leader.CommitIndex);
    }

    [Fact]
    public void Ready_ThatOnlyAdvancesTheCommitIndex_NeedsNoFsync()
    {
        var net = new TestNetwork(1);
        net.Elect("n1");
        var node = net.Node("n1");

        var ticket = node.Propose(CounterStateMachine.Charge(1))!.Value;
        var append = node.GetReady();
        Assert.True(append.MustSync);
        node.Advance();

        // The commit step: a hint in the hard state and entries to apply, all of them durable already.
        var commit = node.GetReady();
        Assert.Equal(ticket.Index, commit.HardState?.Commit);
        Assert.Equal(ticket.Index, commit.CommittedEntries[^1].Index);
        Assert.Empty(commit.Entries);
        Assert.False(commit.MustSync);
    }

    [Fact]
    public void FollowerReady_Acknowledgement_WaitsForTheFsync()
    {
        var net = new TestNetwork(3);
        net.Elect("n1");
        var follower = net.Node("n2");
        var leader = net.Node("n1");

        follower.Step(new AppendEntriesRequest(
            "n1", "n2", leader.Term, leader.LastIndex, leader.Term,
            [new LogEntry(leader.LastIndex + 1, leader.Term, LogEntryKind.Command, CounterStateMachine.Charge(1))],
            leader.CommitIndex, 0));
        var ready = follower.GetReady();

        Assert.True(ready.MustSync);
        Assert.Empty(ready.EarlyMessages);
        var response = Assert.IsType<AppendEntriesResponse>(Assert.Single(ready.Messages));
        Assert.True(response.Success);
        Assert.NotNull(ready.HighWaterMark);
    }

    private static RaftPersistentState State(ulong term, params ulong[] entryTerms) => new(
        new HardState(term, null, 0),
        null,
        [.. entryTerms.Select((t, i) => new LogEntry((ulong)i + 1, t, LogEntryKind.Command, new byte[] { (byte)i }))]);
}
