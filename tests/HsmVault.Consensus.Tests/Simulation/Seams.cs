namespace HsmVault.Consensus.Tests.Simulation;

/// <summary>
/// Thrown by a simulated seam of the <see cref="ReadyPipeline"/> to model power loss at that point: the pipeline
/// stops where it is, and the simulator crashes the member (its unsynced writes may be lost) and restarts it later.
/// </summary>
internal sealed class SimulatedCrashException(string point) : Exception($"crash {point}");

/// <summary>Decides, from the simulation's seeded randomness, whether a member loses power at a crash point.</summary>
/// <param name="rate">The crash point's chance per pass (0: never, and no random draw is taken).</param>
internal delegate bool CrashDecision(double rate);

/// <summary>
/// The member's disk as the pipeline sees it: a <see cref="MemoryRaftStorage"/> whose unsynced writes a crash may
/// lose, with power loss just before or just after the fsync, and every appended entry checked for Log Matching.
/// </summary>
internal sealed class SimulatedDisk(MemoryRaftStorage disk, SimulationOptions options, CrashDecision crash, Action<IReadOnlyList<LogEntry>> appended)
    : IRaftStorage
{
    public RaftPersistentState Load() => disk.Load();

    public void Append(IReadOnlyList<LogEntry> entries)
    {
        disk.Append(entries);
        appended(entries);
    }

    public void SaveHardState(HardState state) => disk.SaveHardState(state);

    public RaftSnapshot WriteSnapshot(ulong index, ulong term, IReadOnlyList<string> members, Action<Stream> writeData) =>
        disk.WriteSnapshot(index, term, members, writeData);

    public void Sync()
    {
        if (crash(options.CrashBeforeSyncRate))
        {
            throw new SimulatedCrashException("before the fsync");
        }

        disk.Sync();
        if (crash(options.CrashAfterSyncRate))
        {
            // Durable, but neither the commit index, the mark nor any acknowledgement followed.
            throw new SimulatedCrashException("after the fsync");
        }
    }

    public void Dispose()
    {
    }
}

/// <summary>
/// The rollback guard's store, kept apart from the disk (in production, in the HSM): a token write is slow, and
/// power may go while it is under way, before the mark is stored. Optionally vouches ahead in windows (see
/// <see cref="SimulationOptions.VouchAheadWindow"/>).
/// </summary>
internal sealed class SimulatedMarkStore(SimMember member, SimulationOptions options, CrashDecision crash) : IHighWaterMarkStore
{
    public HighWaterMark? Read() => options.GuardEnabled ? member.Mark : null;

    public void Write(HighWaterMark mark)
    {
        if (crash(options.CrashDuringMarkWriteRate))
        {
            throw new SimulatedCrashException("while writing the high-water mark");
        }

        member.Mark = options.VouchAheadWindow > 0 ? VouchAhead(member.Mark, mark, (ulong)options.VouchAheadWindow) : mark;
    }

    /// <summary>A store that vouches ahead: the index rounded up to the window, rewritten only when passed or term or vote change.</summary>
    private static HighWaterMark VouchAhead(HighWaterMark? stored, HighWaterMark mark, ulong window)
    {
        var covered = stored is not null
            && (mark.IndexTerm < stored.IndexTerm || (mark.IndexTerm == stored.IndexTerm && mark.Index <= stored.Index));
        if (covered && stored!.Term == mark.Term && stored.Vote == mark.Vote)
        {
            return stored;
        }

        return covered
            ? mark with { Index = stored!.Index, IndexTerm = stored.IndexTerm }
            : mark with { Index = (mark.Index + window - 1) / window * window };
    }
}

/// <summary>The member's application as the pipeline sees it, with power loss after the log is durable and before an entry is applied.</summary>
internal sealed class SimulatedApplication(ISimulatedStateMachine application, SimulationOptions options, CrashDecision crash) : IReplicatedStateMachine
{
    public ulong AppliedIndex => application.AppliedIndex;

    public byte[] Apply(ulong index, ReadOnlySpan<byte> command)
    {
        if (crash(options.CrashBeforeApplyRate))
        {
            throw new SimulatedCrashException($"before applying {index}");
        }

        return application.Apply(index, command);
    }

    /// <summary>
    /// The pipeline applies a batch at once, and the state machine's <see cref="ISimulatedStateMachine.Chain"/>
    /// then describes the state after the batch's last entry only (the last index applied by the last batch).
    /// </summary>
    public ulong LastBatchEnd { get; private set; }

    /// <summary>The application's own batch (the production state machine makes a batch durable as one transaction).</summary>
    public IReadOnlyList<byte[]?> ApplyBatch(IReadOnlyList<LogEntry> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        if (entries.Count > 0 && crash(options.CrashBeforeApplyRate))
        {
            throw new SimulatedCrashException($"before applying {entries[0].Index}..{entries[^1].Index}");
        }

        var results = application.ApplyBatch(entries);
        if (entries.Count > 0)
        {
            LastBatchEnd = entries[^1].Index;
        }

        return results;
    }

    public ulong WriteSnapshot(Stream destination) => application.WriteSnapshot(destination);

    public void RestoreSnapshot(ulong index, Stream source) => application.RestoreSnapshot(index, source);
}
