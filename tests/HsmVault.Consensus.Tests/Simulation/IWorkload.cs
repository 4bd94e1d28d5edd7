namespace HsmVault.Consensus.Tests.Simulation;

/// <summary>
/// The clients of a simulated fleet and what they check: they propose and read through the members' cores and
/// are told what the members apply. Everything random comes from the simulation's seeded <see cref="Random"/>.
/// </summary>
internal interface IWorkload
{
    /// <summary>A fresh, empty application for a member (at start, or after its disk is wiped).</summary>
    ISimulatedStateMachine CreateStateMachine();

    /// <summary>Once per tick, before messages are delivered; <paramref name="faultPhase"/> is false once the fleet heals.</summary>
    void Act(bool faultPhase);

    /// <summary>Proposes the liveness marker at <paramref name="leader"/> (which leads); null if it could not.</summary>
    ProposalTicket? ProposeMarker(SimMember leader);

    /// <summary><paramref name="member"/> applied <paramref name="entry"/>, a command, with <paramref name="result"/>.</summary>
    void Applied(SimMember member, LogEntry entry, byte[] result);

    /// <summary>A quorum confirmed a ReadIndex request of <paramref name="member"/>, which has applied as far: serve the read.</summary>
    void ReadReady(SimMember member, ReadState read);

    /// <summary>A ReadIndex request of <paramref name="member"/> will never be confirmed.</summary>
    void ReadDropped(SimMember member, ulong requestId);

    /// <summary><paramref name="member"/> crashed: everything it had in flight is gone.</summary>
    void Crashed(SimMember member);

    /// <summary>The run is over: check what the clients saw.</summary>
    void Finish();

    /// <summary>Client operations recorded (0 when the workload keeps no history).</summary>
    int Operations => 0;

    /// <summary>Recorded operations whose outcome the client never learnt.</summary>
    int UnknownOutcomes => 0;
}
