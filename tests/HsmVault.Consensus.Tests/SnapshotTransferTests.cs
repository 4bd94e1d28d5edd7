namespace HsmVault.Consensus.Tests;

/// <summary>Snapshots cut into chunks and assembled in a file: only a complete, in-order, matching transfer reaches Raft.</summary>
public sealed class SnapshotTransferTests : IDisposable
{
    private const int ChunkBytes = 1000;
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "hsmvault-transfer-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(ChunkBytes)]
    [InlineData((5 * ChunkBytes) + 17)]
    public void Assemble_AllChunksInOrder_GivesBackTheSnapshot_ReadFromItsFile_UntilReleased(int length)
    {
        var snapshot = Snapshot(length, index: 40);
        using var assembler = new SnapshotAssembler(_directory, long.MaxValue);
        var chunks = SnapshotChunker.Split(snapshot, ChunkBytes).ToList();
        Assert.Equal(Math.Max(1, (length + ChunkBytes - 1) / ChunkBytes), chunks.Count);
        Assert.All(chunks, c => Assert.True(c.Data.Length <= ChunkBytes));

        RaftSnapshot? assembled = null;
        foreach (var chunk in chunks)
        {
            Assert.Null(assembled);
            assembled = assembler.Add(chunk);
        }

        Assert.NotNull(assembled);
        Assert.Equal((snapshot.Index, snapshot.Term), (assembled.Index, assembled.Term));
        Assert.Equal(snapshot.Members, assembled.Members);
        Assert.Equal(snapshot.Data.ToArray(), assembled.Data.ToArray());
        Assert.False(assembler.InProgress);

        // The data stays in the transfer's file, not in memory, until whoever took the snapshot releases it.
        Assert.Single(IncomingFiles());
        ((IDisposable)assembled.Data).Dispose();
        Assert.Empty(IncomingFiles());
    }

    [Fact]
    public void Assemble_ChunksOutOfOrder_IsRefused_AndTheTransferAbandoned()
    {
        var chunks = SnapshotChunker.Split(Snapshot(4 * ChunkBytes, index: 9), ChunkBytes).ToList();
        using var assembler = new SnapshotAssembler(_directory, long.MaxValue);
        Assert.Null(assembler.Add(chunks[0]));
        Assert.Null(assembler.Add(chunks[1]));

        Assert.Throws<InvalidDataException>(() => assembler.Add(chunks[3]));
        Assert.Throws<InvalidDataException>(() => assembler.Add(chunks[2]));

        Assert.False(assembler.InProgress);
        Assert.Empty(IncomingFiles());
    }

    [Fact]
    public void Assemble_DuplicateChunk_IsRefused()
    {
        var chunks = SnapshotChunker.Split(Snapshot(3 * ChunkBytes, index: 9), ChunkBytes).ToList();
        using var assembler = new SnapshotAssembler(_directory, long.MaxValue);
        Assert.Null(assembler.Add(chunks[0]));
        Assert.Null(assembler.Add(chunks[1]));

        Assert.Throws<InvalidDataException>(() => assembler.Add(chunks[1]));
        Assert.Throws<InvalidDataException>(() => assembler.Add(chunks[2]));
        Assert.Empty(IncomingFiles());
    }

    [Fact]
    public void Assemble_MissingChunk_NeverCompletes()
    {
        var chunks = SnapshotChunker.Split(Snapshot(3 * ChunkBytes, index: 9), ChunkBytes).ToList();
        using var assembler = new SnapshotAssembler(_directory, long.MaxValue);
        Assert.Null(assembler.Add(chunks[0]));

        // The last chunk, with its digest, cannot stand in for the one that went missing.
        Assert.Throws<InvalidDataException>(() => assembler.Add(chunks[2]));

        // Nor can a transfer be joined in the middle.
        Assert.Throws<InvalidDataException>(() => assembler.Add(chunks[1]));
        Assert.Empty(IncomingFiles());
    }

    [Fact]
    public void Assemble_LastChunkEndsEarlyOrDigestDiffers_IsRefused()
    {
        var chunks = SnapshotChunker.Split(Snapshot(3 * ChunkBytes, index: 9), ChunkBytes).ToList();
        using var assembler = new SnapshotAssembler(_directory, long.MaxValue);
        assembler.Add(chunks[0]);
        Assert.Throws<InvalidDataException>(() => assembler.Add(chunks[1] with { Done = true, Sha256 = chunks[2].Sha256 }));

        assembler.Add(chunks[0]);
        assembler.Add(chunks[1]);
        var tampered = chunks[2].Data.ToArray();
        tampered[^1] ^= 1;
        Assert.Throws<InvalidDataException>(() => assembler.Add(chunks[2] with { Data = tampered }));
        Assert.Empty(IncomingFiles());
    }

    [Fact]
    public void Assemble_ChunkOfAnotherSnapshotMidTransfer_IsRefused_ButANewTransferMayStart()
    {
        var older = SnapshotChunker.Split(Snapshot(3 * ChunkBytes, index: 9), ChunkBytes).ToList();
        var newer = SnapshotChunker.Split(Snapshot(2 * ChunkBytes, index: 12), ChunkBytes).ToList();
        using var assembler = new SnapshotAssembler(_directory, long.MaxValue);
        assembler.Add(older[0]);
        Assert.Throws<InvalidDataException>(() => assembler.Add(newer[1]));

        // Offset 0 starts over: the sender moved on to a newer snapshot.
        assembler.Add(older[0]);
        Assert.Null(assembler.Add(newer[0]));
        var assembled = assembler.Add(newer[1])!;
        Assert.Equal(12UL, assembled.Index);
        Assert.Equal(newer.SelectMany(c => c.Data.ToArray()), assembled.Data.ToArray());
        ((IDisposable)assembled.Data).Dispose();
        Assert.Empty(IncomingFiles());
    }

    [Fact]
    public void Assemble_LargerThanAccepted_IsRefusedAtTheFirstChunk()
    {
        var chunks = SnapshotChunker.Split(Snapshot(3 * ChunkBytes, index: 9), ChunkBytes).ToList();
        using var assembler = new SnapshotAssembler(_directory, maxBytes: (3 * ChunkBytes) - 1);
        Assert.Throws<InvalidDataException>(() => assembler.Add(chunks[0]));
        Assert.False(assembler.InProgress);
    }

    [Fact]
    public void CrashMidTransfer_KeepsTheOldSnapshotAndLog_AndTheLeftoverIsRemovedOnOpen()
    {
        var old = Snapshot(100, index: 5) with { Term = 1 };
        using (var storage = new FileRaftStorage(_directory))
        {
            storage.Append([.. Enumerable.Range(1, 8).Select(i => new LogEntry((ulong)i, 1, LogEntryKind.Command, new byte[] { (byte)i }))]);
            storage.SaveSnapshot(old);
            storage.Sync();
        }

        var crashImage = _directory + "-crash";
        try
        {
            using (var storage = new FileRaftStorage(_directory))
            using (var assembler = new SnapshotAssembler(storage.DirectoryPath, long.MaxValue))
            {
                var chunks = SnapshotChunker.Split(Snapshot(5 * ChunkBytes, index: 50), ChunkBytes).ToList();
                assembler.Add(chunks[0]);
                assembler.Add(chunks[1]);
                Assert.Single(IncomingFiles());

                // What the disk holds if the process dies now.
                Directory.CreateDirectory(crashImage);
                foreach (var file in Directory.EnumerateFiles(_directory))
                {
                    File.Copy(file, Path.Combine(crashImage, Path.GetFileName(file)));
                }
            }

            Assert.Single(Directory.EnumerateFiles(crashImage, SnapshotAssembler.FilePrefix + "*"));
            using var restarted = new FileRaftStorage(crashImage);
            var state = restarted.Load();
            Assert.Equal(5UL, state.Snapshot!.Index);
            Assert.Equal(old.Data.ToArray(), state.Snapshot.Data.ToArray());
            Assert.Equal([6UL, 7, 8], state.Entries.Select(e => e.Index));
            Assert.Empty(Directory.EnumerateFiles(crashImage, SnapshotAssembler.FilePrefix + "*"));
        }
        finally
        {
            if (Directory.Exists(crashImage))
            {
                Directory.Delete(crashImage, recursive: true);
            }
        }
    }

    private static RaftSnapshot Snapshot(int length, ulong index)
    {
        var data = new byte[length];
        new Random((int)index).NextBytes(data);
        return new RaftSnapshot(index, 2, ["n1", "n2", "n3"], data);
    }

    private IEnumerable<string> IncomingFiles() =>
        Directory.Exists(_directory) ? Directory.EnumerateFiles(_directory, SnapshotAssembler.FilePrefix + "*") : [];
}
