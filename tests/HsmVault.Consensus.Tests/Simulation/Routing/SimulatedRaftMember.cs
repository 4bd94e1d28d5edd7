using HsmVault.Consensus.Internal;

namespace HsmVault.Consensus.Tests.Simulation.Routing;

/// <summary>
/// One run of a simulated member (from a start to its crash) as its <see cref="LeaderRouter"/> sees it: the
/// <see cref="IRaftMember"/> that <see cref="RaftHost"/> is in the daemon, over the member's core and the production
/// <see cref="PendingRequests"/>, which the member's pipeline answers. Requests wait as long as the host's
/// <see cref="RaftHostOptions.RequestTimeout"/> would (<see cref="RequestTimeoutTicks"/>). After a crash every call
/// fails as a dead process's would, and whatever was waiting fails with it.
/// </summary>
internal sealed class SimulatedRaftMember : IRaftMember
{
    /// <summary>How long a proposal or read barrier waits for a majority (the host's RequestTimeout), in ticks.</summary>
    public const int RequestTimeoutTicks = 30;

    /// <summary>How long a router's write or read barrier may take in all (the daemon's CommitTimeout), in ticks.</summary>
    public const int RouterTimeoutTicks = 60;

    private readonly Simulation _simulation;
    private readonly SimMember _member;
    private readonly RaftNode _node;
    private readonly SimulatedClock _clock;
    private bool _crashed;

    public SimulatedRaftMember(Simulation simulation, SimMember member, RaftNode node, SimulatedClock clock, ILeaderLink link)
    {
        _simulation = simulation;
        _member = member;
        _node = node;
        _clock = clock;
        // Continuations inline: the simulation answers only from code it runs without its context current, so that
        // they are posted to its queue (see Simulation.Deferring), never run inside a Ready.
        Requests = new PendingRequests(() => _node.LeaderId, simulation.NextRequestId, TaskCreationOptions.None);
        Router = new LeaderRouter(this, link, clock.Tick * RouterTimeoutTicks, clock);
    }

    /// <summary>What the member's pipeline answers (its <see cref="IReadyObserver"/> passes everything on to it).</summary>
    public PendingRequests Requests { get; }

    /// <summary>The daemon's router, over this member and the simulated link.</summary>
    public LeaderRouter Router { get; }

    public bool Crashed => _crashed;

    public string Id => _member.Id;

    public bool IsLeader => !_crashed && _node.Role == RaftRole.Leader;

    public string? LeaderId => _crashed ? null : _node.LeaderId;

    public async Task<byte[]> ProposeAsync(byte[] command, CancellationToken cancellationToken)
    {
        ThrowIfCrashed();
        var completion = Requests.NewProposal();

        // Deferred: proposing may fail an earlier proposal this member made at the same index, whose caller must not
        // resume inside this call.
        SimulatedAsync.Deferring(() => Requests.Propose(_node, command, completion));
        _simulation.Proposed(_member);
        return await PendingRequests.AwaitCommitAsync(completion, _clock.Tick * RequestTimeoutTicks, _clock, cancellationToken);
    }

    public async Task<ulong> ReadBarrierAsync(CancellationToken cancellationToken)
    {
        ThrowIfCrashed();
        var completion = Requests.NewRead();
        SimulatedAsync.Deferring(() => Requests.ReadIndex(_node, completion));
        _simulation.Drain(_member);
        return await PendingRequests.AwaitReadAsync(completion, _clock.Tick * RequestTimeoutTicks, _clock, cancellationToken);
    }

    public Task WaitForAppliedAsync(ulong index, CancellationToken cancellationToken)
    {
        ThrowIfCrashed();
        return Requests.WaitForAppliedAsync(index, cancellationToken);
    }

    /// <summary>The process is gone: what waited on it fails, and so does every later call.</summary>
    public void Crash()
    {
        _crashed = true;
        Requests.FailAll(new OperationCanceledException($"{_member.Id} crashed"));
    }

    private void ThrowIfCrashed()
    {
        if (_crashed)
        {
            throw new OperationCanceledException($"{_member.Id} crashed");
        }
    }
}
