namespace HsmVault.Consensus.Tests.Simulation;

/// <summary>
/// Clients of <see cref="CounterStateMachine"/>: they charge guesses at random members and read counters with
/// ReadIndex; the <see cref="SafetyChecker"/> checks that no acknowledged charge is lost and no read is stale.
/// </summary>
internal sealed class CounterWorkload(Simulation simulation) : IWorkload
{
    private readonly Dictionary<SimMember, Pending> _pending = [];

    public ISimulatedStateMachine CreateStateMachine() => new CounterStateMachine();

    public void Act(bool faultPhase)
    {
        if (!faultPhase)
        {
            return;
        }

        var random = simulation.Random;
        var members = simulation.Members;
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
