namespace HsmVault.Consensus.Internal;

/// <summary>How the leader is currently replicating to one follower (etcd-raft's progress states).</summary>
internal enum ProgressState
{
    /// <summary>Next index is uncertain: send one append at a time and wait for its answer.</summary>
    Probe,

    /// <summary>Follower is in step: stream entries optimistically.</summary>
    Replicate,

    /// <summary>Follower needs a snapshot; one is on its way.</summary>
    Snapshot,
}

/// <summary>The leader's view of one member (Raft figure 2 nextIndex/matchIndex, plus flow control).</summary>
internal sealed class Progress
{
    public ulong Match { get; set; }

    public ulong Next { get; set; } = 1;

    public ProgressState State { get; set; }

    /// <summary>In <see cref="ProgressState.Probe"/>: an append is in flight, wait for its answer or the next heartbeat.</summary>
    public bool ProbeSent { get; set; }

    /// <summary>In <see cref="ProgressState.Snapshot"/>: the snapshot index sent.</summary>
    public ulong PendingSnapshot { get; set; }

    /// <summary>In <see cref="ProgressState.Snapshot"/>: heartbeats left before the snapshot is resent.</summary>
    public int SnapshotResendTicks { get; set; }

    /// <summary>In <see cref="ProgressState.Replicate"/>: heartbeats without progress while entries are in flight.</summary>
    public int StalledHeartbeats { get; set; }

    /// <summary>Heard from within the current check-quorum interval (thesis §6.2).</summary>
    public bool RecentActive { get; set; }

    /// <summary>Highest ReadIndex round this member has acknowledged in the current term (thesis §6.4).</summary>
    public ulong AckedReadSequence { get; set; }

    public void BecomeProbe(ulong next)
    {
        State = ProgressState.Probe;
        Next = Math.Max(next, 1);
        ProbeSent = false;
        StalledHeartbeats = 0;
    }

    public void BecomeReplicate()
    {
        State = ProgressState.Replicate;
        Next = Match + 1;
        ProbeSent = false;
        StalledHeartbeats = 0;
    }

    public void BecomeSnapshot(ulong snapshotIndex, int resendTicks)
    {
        State = ProgressState.Snapshot;
        PendingSnapshot = snapshotIndex;
        SnapshotResendTicks = resendTicks;
        ProbeSent = false;
    }
}
