namespace HsmVault.Consensus.Tests.Simulation;

/// <summary>
/// Clients of <see cref="CounterStateMachine"/>: they charge guesses at random members and read counters with
/// ReadIndex; the <see cref="SafetyChecker"/> checks that no acknowledged charge is lost and no read is stale.
/// With <see cref="SimulationOptions.RouteThroughAnyMember"/> they go through each member's <see cref="LeaderRouter"/>
/// instead, as the daemon's clients do, and every charge carries an id, so that a charge committed at two indexes
/// (the router resending a write whose fate it did not know) is a violation.
/// </summary>
internal sealed class CounterWorkload(Simulation simulation) : IWorkload
{
    private readonly Dictionary<SimMember, Pending> _pending = [];
    private readonly Dictionary<ulong, ulong> _committedAt = [];
    private ulong _charges;

    public ulong InitialChain => ISimulatedStateMachine.InitialChain;

    public ISimulatedStateMachine CreateStateMachine() => new CounterStateMachine();

    public void Act(bool faultPhase)
    {
        if (!faultPhase)
        {
            return;
        }

        var random = simulation.Random;
        var members = simulation.Members;
        if (simulation.Options.RouteThroughAnyMember)
        {
            ActThroughRouters(random, members);
            return;
        }

        for (var i = 0; i < simulation.Options.ProposalsPerTick; i++)
        {
            Propose(random, members);
        }

        if (random.NextDouble() < simulation.Options.ReadRate)
        {
            var member = members[random.Next(members.Count)];
            var key = random.Next(CounterStateMachine.Keys - 1);
            var id = simulation.NextRequestId();
            if (member.Node?.ReadIndex(id) == true)
            {
                Of(member).Reads[id] = (key, simulation.Checker.AcknowledgedCount(key));
                simulation.Drain(member);
            }
        }
    }

    private void Propose(Random random, IReadOnlyList<SimMember> members)
    {
        if (random.NextDouble() < simulation.Options.ProposeRate)
        {
            var member = members[random.Next(members.Count)];
            var key = random.Next(CounterStateMachine.Keys - 1);
            if (member.Node?.Propose(CounterStateMachine.Charge(key)) is { } ticket)
            {
                Of(member).Proposals[ticket.Index] = (ticket.Term, key);
                simulation.Proposed(member);
            }
        }
    }

    private void ActThroughRouters(Random random, IReadOnlyList<SimMember> members)
    {
        for (var i = 0; i < simulation.Options.ProposalsPerTick; i++)
        {
            if (random.NextDouble() < simulation.Options.ProposeRate && members[random.Next(members.Count)].Raft is { } raft)
            {
                var key = random.Next(CounterStateMachine.Keys - 1);
                var command = CounterStateMachine.Charge(key, ++_charges);
                simulation.StartClientCall(() => ChargeThroughRouterAsync(raft, key, command));
            }
        }

        if (random.NextDouble() < simulation.Options.ReadRate && members[random.Next(members.Count)] is { Raft: { } reader } member)
        {
            var key = random.Next(CounterStateMachine.Keys - 1);
            var acknowledged = simulation.Checker.AcknowledgedCount(key);
            simulation.StartClientCall(() => ReadThroughRouterAsync(member, reader, key, acknowledged));
        }
    }

    private async Task ChargeThroughRouterAsync(Routing.SimulatedRaftMember raft, int key, byte[] command)
    {
        try
        {
            // Whichever member answers, the result is that of applying the charge at a leader: committed.
            simulation.Checker.Acknowledge(key, await raft.Router.SubmitAsync(command, CancellationToken.None));
        }
        catch (Exception e) when (e is OutcomeUnknownException or QuorumUnavailableException or OperationCanceledException)
        {
            // No answer (unknown outcome, no leader, or the member crashed): nothing is acknowledged. Anything else
            // the router throws fails the run.
        }
    }

    private async Task ReadThroughRouterAsync(SimMember member, Routing.SimulatedRaftMember raft, int key, int acknowledged)
    {
        try
        {
            await raft.Router.ReadBarrierAsync(CancellationToken.None);
        }
        catch (Exception e) when (e is QuorumUnavailableException or OperationCanceledException)
        {
            return;
        }

        if (!raft.Crashed)
        {
            var counter = (CounterStateMachine)member.StateMachine;
            simulation.Checker.CheckRead(member.Id, key, counter.Count(key), acknowledged);
        }
    }

    public ProposalTicket? ProposeMarker(SimMember leader)
    {
        const int key = CounterStateMachine.Keys - 1;
        if (leader.Node?.Propose(CounterStateMachine.Charge(key)) is not { } ticket)
        {
            return null;
        }

        Of(leader).Proposals[ticket.Index] = (ticket.Term, key);
        return ticket;
    }

    public void Applied(SimMember member, LogEntry entry, byte[] result)
    {
        if (CounterStateMachine.ChargeId(entry.Data.Span) is { } id)
        {
            if (_committedAt.TryGetValue(id, out var index) && index != entry.Index)
            {
                simulation.Checker.Violation($"Charge {id} committed twice, at {index} and {entry.Index}: a write was resent.");
            }

            _committedAt[id] = entry.Index;
        }

        if (Of(member).Proposals.Remove(entry.Index, out var proposal) && proposal.Term == entry.Term)
        {
            simulation.Checker.Acknowledge(proposal.Key, result);
        }
    }

    public void ReadReady(SimMember member, ReadState read)
    {
        if (Of(member).Reads.Remove(read.RequestId, out var request))
        {
            var counter = (CounterStateMachine)member.StateMachine;
            simulation.Checker.CheckRead(member.Id, request.Key, counter.Count(request.Key), request.Acknowledged);
        }
    }

    public void ReadDropped(SimMember member, ulong requestId) => Of(member).Reads.Remove(requestId);

    public void Crashed(SimMember member) => _pending.Remove(member);

    public void Finish()
    {
    }

    private Pending Of(SimMember member)
    {
        if (!_pending.TryGetValue(member, out var pending))
        {
            pending = new Pending();
            _pending[member] = pending;
        }

        return pending;
    }

    private sealed class Pending
    {
        public Dictionary<ulong, (ulong Term, int Key)> Proposals { get; } = [];

        public Dictionary<ulong, (int Key, int Acknowledged)> Reads { get; } = [];
    }
}
