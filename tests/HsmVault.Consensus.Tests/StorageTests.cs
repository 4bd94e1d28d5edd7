namespace HsmVault.Consensus.Tests;

public sealed class StorageTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "hsmvault-raft-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [Fact]
    public void FileStorage_Reopened_RecoversEntriesHardStateAndCommit()
    {
        using (var storage = new FileRaftStorage(_directory))
        {
            storage.Append(Entries(1, 5, term: 1));
            storage.Sync();
            storage.SaveHardState(new HardState(2, "n2", 3));
            storage.SaveHardState(new HardState(2, "n2", 4));
            storage.Sync();
        }

        using var reopened = new FileRaftStorage(_directory);
        var state = reopened.Load();

        Assert.Equal(new HardState(2, "n2", 4), state.HardState);
        Assert.Equal([1UL, 2, 3, 4, 5], state.Entries.Select(e => e.Index));
        Assert.Equal(new byte[] { 3, 3 }, state.Entries[2].Data.ToArray());
        Assert.Equal(0, reopened.TruncatedTailBytes);
    }

    [Fact]
    public void FileStorage_TornTailRecord_IsCutOffOnOpen_AndAppendingContinues()
    {
        using (var storage = new FileRaftStorage(_directory))
        {
            storage.Append(Entries(1, 3, term: 1));
            storage.Sync();
        }

        // A crash in the middle of writing the next record: its header and half its payload reached the disk.
        var log = Path.Combine(_directory, "raft.log");
        var goodLength = new FileInfo(log).Length;
        using (var stream = new FileStream(log, FileMode.Append))
        {
            stream.Write([40, 0, 0, 0, 0x12, 0x34, 0x56, 0x78, 1, 4, 0, 0]);
        }

        using (var reopened = new FileRaftStorage(_directory))
        {
            Assert.Equal(12, reopened.TruncatedTailBytes);
            Assert.Equal(goodLength, new FileInfo(log).Length);
            Assert.Equal([1UL, 2, 3], reopened.Load().Entries.Select(e => e.Index));
            reopened.Append(Entries(4, 4, term: 2));
            reopened.Sync();
        }

        using var again = new FileRaftStorage(_directory);
        Assert.Equal([1UL, 2, 3, 4], again.Load().Entries.Select(e => e.Index));
        Assert.Equal(0, again.TruncatedTailBytes);
    }

    [Fact]
    public void FileStorage_LastRecordWithBadChecksum_IsDroppedOnOpen()
    {
        using (var storage = new FileRaftStorage(_directory))
        {
            storage.Append(Entries(1, 3, term: 1));
            storage.Sync();
        }

        var log = Path.Combine(_directory, "raft.log");
        var bytes = File.ReadAllBytes(log);
        bytes[^1] ^= 0xff; // a sector of the last record never made it
        File.WriteAllBytes(log, bytes);

        using var reopened = new FileRaftStorage(_directory);
        Assert.Equal([1UL, 2], reopened.Load().Entries.Select(e => e.Index));
        Assert.True(reopened.TruncatedTailBytes > 0);
    }

    [Fact]
    public void FileStorage_AppendAtExistingIndex_ReplacesThatEntryAndTheRest_AlsoAfterReopen()
    {
        using (var storage = new FileRaftStorage(_directory))
        {
            storage.Append(Entries(1, 5, term: 1));
            storage.Append(Entries(3, 3, term: 2));
            storage.Sync();
            Assert.Equal([1UL, 1, 2], storage.Load().Entries.Select(e => e.Term));
        }

        using var reopened = new FileRaftStorage(_directory);
        Assert.Equal([1UL, 1, 2], reopened.Load().Entries.Select(e => e.Term));
    }

    [Fact]
    public void FileStorage_Snapshot_CompactsTheLogFile_AndSurvivesReopen()
    {
        using (var storage = new FileRaftStorage(_directory))
        {
            storage.Append(Entries(1, 200, term: 1));
            storage.Sync();
            var before = new FileInfo(Path.Combine(_directory, "raft.log")).Length;

            storage.SaveSnapshot(new RaftSnapshot(190, 1, ["n1", "n2", "n3"], new byte[] { 9, 8, 7 }));
            var after = new FileInfo(Path.Combine(_directory, "raft.log")).Length;
            Assert.True(after < before / 10, $"log {before} -> {after} bytes");

            storage.Append(Entries(201, 201, term: 2));
            storage.Sync();
        }

        using var reopened = new FileRaftStorage(_directory);
        var state = reopened.Load();
        Assert.Equal(190UL, state.Snapshot!.Index);
        Assert.Equal(["n1", "n2", "n3"], state.Snapshot.Members);
        Assert.Equal(new byte[] { 9, 8, 7 }, state.Snapshot.Data.ToArray());
        Assert.Equal(Enumerable.Range(191, 11).Select(i => (ulong)i), state.Entries.Select(e => e.Index));
    }

    [Fact]
    public void FileStorage_WriteSnapshot_StreamsTheDataIn_AndServesItFromTheFile()
    {
        var expected = new byte[(3 * 1024 * 1024) + 5];
        new Random(3).NextBytes(expected);
        RaftSnapshot stored;
        using (var storage = new FileRaftStorage(_directory))
        {
            stored = storage.WriteSnapshot(40, 2, ["n1", "n2"], destination =>
            {
                for (var offset = 0; offset < expected.Length; offset += 4096)
                {
                    destination.Write(expected.AsSpan(offset, Math.Min(4096, expected.Length - offset)));
                }
            });
            Assert.Equal(expected.Length, stored.Data.Length);
            Assert.Equal(expected, stored.Data.ToArray());

            // A newer snapshot releases the older one's file: a reader of it fails rather than reading the new file.
            storage.SaveSnapshot(new RaftSnapshot(41, 2, ["n1", "n2"], new byte[] { 1 }));
            Assert.Throws<ObjectDisposedException>(() => stored.Data.ToArray());
            storage.SaveSnapshot(new RaftSnapshot(42, 2, ["n1", "n2"], expected));
        }

        using var reopened = new FileRaftStorage(_directory);
        var snapshot = reopened.Load().Snapshot!;
        Assert.Equal((42UL, 2UL), (snapshot.Index, snapshot.Term));
        Assert.Equal(expected, snapshot.Data.ToArray());
    }

    [Fact]
    public void FileStorage_SnapshotNotInLog_DropsTheDivergingEntries()
    {
        using (var storage = new FileRaftStorage(_directory))
        {
            storage.Append(Entries(1, 5, term: 1));
            storage.Sync();
            storage.SaveSnapshot(new RaftSnapshot(8, 3, ["n1"], new byte[] { 1 }));
            Assert.Empty(storage.Load().Entries);
        }

        using var reopened = new FileRaftStorage(_directory);
        Assert.Empty(reopened.Load().Entries);
        Assert.Equal(8UL, reopened.Load().Snapshot!.Index);
    }

    [Fact]
    public void FileStorage_RecoveredByANode_RestartsWithTheSameLog()
    {
        using (var storage = new FileRaftStorage(_directory))
        {
            storage.Append(Entries(1, 3, term: 1));
            storage.Sync();
            storage.SaveHardState(new HardState(1, "n1", 3));
        }

        using var reopened = new FileRaftStorage(_directory);
        var node = new RaftNode(
            new RaftNodeOptions { Id = "n1", Members = ["n1"], Random = new Random(1) }, reopened.Load(), null, 0);

        Assert.Equal(3UL, node.LastIndex);
        Assert.Equal(3UL, node.CommitIndex);
        Assert.Equal(3, node.GetReady().CommittedEntries.Count);
    }

    [Fact]
    public void MemoryStorage_Crash_LosesUnsyncedWritesOnly()
    {
        var storage = new MemoryRaftStorage();
        storage.Append(Entries(1, 3, term: 1));
        storage.Sync();
        storage.Append(Entries(4, 6, term: 1));
        storage.SaveHardState(new HardState(1, "n1", 0)); // term and vote are durable at once

        storage.Crash(new ZeroRandom());

        var state = storage.Load();
        Assert.Equal([1UL, 2, 3], state.Entries.Select(e => e.Index));
        Assert.Equal("n1", state.HardState.Vote);
    }

    private static LogEntry[] Entries(ulong from, ulong to, ulong term)
    {
        var entries = new List<LogEntry>();
        for (var i = from; i <= to; i++)
        {
            entries.Add(new LogEntry(i, term, LogEntryKind.Command, new byte[] { (byte)i, (byte)i }));
        }

        return [.. entries];
    }

    /// <summary>Keeps none of the unsynced writes.</summary>
    private sealed class ZeroRandom : Random
    {
        public override int Next(int maxValue) => 0;
    }
}
