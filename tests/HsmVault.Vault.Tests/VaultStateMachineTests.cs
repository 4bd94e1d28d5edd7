using HsmVault.Consensus;
using System.Text;
using HsmVault.Crypto.Opaque;
using HsmVault.Vault.Records;
using HsmVault.Vault.State;
using Microsoft.Data.Sqlite;

namespace HsmVault.Vault.Tests;

/// <summary>The SQLite state: apply, durability across reopen, idempotent replay, snapshots, and what reaches the disk.</summary>
public sealed class VaultStateMachineTests
{
    private static readonly UserIdentity Alice = new("tenant", "alice");
    private static readonly UserIdentity Bob = new("tenant", "bob");
    private static readonly TestMembers Members = new();

    [Fact]
    public void Apply_Register_ThenReadReturnsRowAndResult()
    {
        using var dir = new TempDirectory();
        using var state = Members.OpenState(dir.Path);

        var result = VaultCommandCodec.DecodeResult(state.Apply(1, Encode(Commands.Register(Alice, 0, 5, [1, 2, 3], false))));

        AssertResult(CommandOutcome.Registered, 5, result);
        Assert.Equal(1UL, state.AppliedIndex);
        var row = state.Read(Alice);
        Assert.NotNull(row);
        Assert.Equal((1L, RecordState.Live, 5, 0), (row.Version, row.State, row.GuessLimit, row.GuessesUsed));
        Assert.Equal([1, 2, 3], row.SealedRecord);
        Assert.Null(state.Read(Bob));
    }

    [Fact]
    public void Apply_RefusedCommand_StillAdvancesAppliedIndexWithoutChangingRow()
    {
        using var dir = new TempDirectory();
        using var state = Members.OpenState(dir.Path);
        state.Apply(1, Encode(Commands.Register(Alice, 0, 5, [1], false)));

        var result = VaultCommandCodec.DecodeResult(state.Apply(2, Encode(Commands.Charge(state, Alice, 7))));

        Assert.Equal(CommandOutcome.VersionConflict, result.Outcome);
        Assert.Equal(2UL, state.AppliedIndex);
        Assert.Equal(0, state.Read(Alice)!.GuessesUsed);
    }

    [Fact]
    public void Apply_EmptyEntry_OnlyAdvancesIndex()
    {
        using var dir = new TempDirectory();
        using var state = Members.OpenState(dir.Path);

        Assert.Empty(state.Apply(1, []));
        Assert.Equal(1UL, state.AppliedIndex);
    }

    [Fact]
    public void ApplyBatch_GivesTheSameResultsAndStateAsApplyingOneByOne()
    {
        // One transaction per batch must change nothing but when the state reaches the disk.
        using var oneByOneDir = new TempDirectory();
        using var batchDir = new TempDirectory();
        using var oneByOne = Members.OpenState(oneByOneDir.Path);
        using var batched = Members.OpenState(batchDir.Path);
        var entries = new List<LogEntry>();
        var results = new List<byte[]?>();
        void Add(LogEntry entry)
        {
            entries.Add(entry);
            results.Add(entry.Kind == LogEntryKind.Command ? oneByOne.Apply(entry.Index, entry.Data.Span) : null);
        }

        Add(new LogEntry(1, 1, LogEntryKind.NoOp, Array.Empty<byte>()));
        Add(Command(2, Commands.Register(Alice, 0, 5, [1, 2], false)));
        Add(Command(3, Commands.Register(Bob, 0, 3, [9], false)));
        Add(Command(4, Commands.Charge(oneByOne, Alice, 1)));
        Add(Command(5, Commands.Delete(oneByOne, Bob)));
        Add(Command(6, Commands.Charge(oneByOne, Bob, 1)));

        var batchResults = batched.ApplyBatch(entries);

        Assert.Equal(results.Count, batchResults.Count);
        for (var i = 0; i < results.Count; i++)
        {
            Assert.Equal(results[i], batchResults[i]);
        }

        Assert.Null(batchResults[0]);
        Assert.Equal(6UL, batched.AppliedIndex);
        AssertSameRow(oneByOne.Read(Alice), batched.Read(Alice));
        AssertSameRow(oneByOne.Read(Bob), batched.Read(Bob));
        Assert.Equal(oneByOne.CreateSnapshot(out _), batched.CreateSnapshot(out _));
    }

    [Fact]
    public void ApplyBatch_ReplayedAfterReopen_SkipsWhatWasAppliedAndAppliesTheRest()
    {
        using var dir = new TempDirectory();
        LogEntry register;
        LogEntry charge;
        using (var state = Members.OpenState(dir.Path))
        {
            register = Command(1, Commands.Register(Alice, 0, 5, [1], false));
            state.ApplyBatch([register]);
            charge = Command(2, Commands.Charge(state, Alice, 1));
        }

        using var reopened = Members.OpenState(dir.Path);
        var results = reopened.ApplyBatch([register, charge]);

        Assert.Empty(results[0]!);
        Assert.Equal(CommandOutcome.Charged, VaultCommandCodec.DecodeResult(results[1]!).Outcome);
        Assert.Equal(2UL, reopened.AppliedIndex);
        Assert.Equal(1, reopened.Read(Alice)!.GuessesUsed);
    }

    [Fact]
    public void SeedSyntheticUsers_SameOnEveryMember_AndReadable()
    {
        using var first = new TempDirectory();
        using var second = new TempDirectory();

        VaultStateMachine.SeedSyntheticUsers(first.Path, "tenant", 500);
        VaultStateMachine.SeedSyntheticUsers(second.Path, "tenant", 500);

        using var a = Members.OpenState(first.Path);
        using var b = Members.OpenState(second.Path);
        var user = a.Read(new UserIdentity("tenant", "seeded-499"))!;
        Assert.Equal((RecordState.Live, 10, 0), (user.State, user.GuessLimit, user.GuessesUsed));
        Assert.Null(a.Read(new UserIdentity("tenant", "seeded-500")));
        Assert.Equal(0UL, a.AppliedIndex);
        Assert.Equal(a.CreateSnapshot(out _), b.CreateSnapshot(out _));
    }

    [Fact]
    public void SeedSyntheticUsers_IntoAStateThatHasApplied_IsRefused()
    {
        using var dir = new TempDirectory();
        using (var state = Members.OpenState(dir.Path))
        {
            state.Apply(1, Encode(Commands.Register(Alice, 0, 5, [1], false)));
        }

        var refused = Assert.Throws<InvalidOperationException>(() => VaultStateMachine.SeedSyntheticUsers(dir.Path, "tenant", 10));

        Assert.Contains("before their first start", refused.Message, StringComparison.Ordinal);
        using var reopened = Members.OpenState(dir.Path);
        Assert.Null(reopened.Read(new UserIdentity("tenant", "seeded-0")));
    }

    [Fact]
    public void Reopen_StateAndAppliedIndexSurvive()
    {
        using var dir = new TempDirectory();
        using (var state = Members.OpenState(dir.Path))
        {
            state.Apply(1, Encode(Commands.Register(Alice, 0, 5, [1, 2], false)));
            state.Apply(2, Encode(Commands.Charge(state, Alice, 1)));
            state.Apply(3, Encode(Commands.Charge(state, Alice, 1)));
            state.Apply(4, Encode(Commands.Register(Bob, 0, 3, [9], false)));
            state.Apply(5, Encode(Commands.Delete(state, Bob)));
        }

        using var reopened = Members.OpenState(dir.Path);

        Assert.Equal(5UL, reopened.AppliedIndex);
        var alice = reopened.Read(Alice)!;
        Assert.Equal((1L, RecordState.Live, 5, 2), (alice.Version, alice.State, alice.GuessLimit, alice.GuessesUsed));
        Assert.Equal([1, 2], alice.SealedRecord);
        var bob = reopened.Read(Bob)!;
        Assert.Equal((1L, RecordState.Deleted), (bob.Version, bob.State));
        Assert.Null(bob.SealedRecord);
    }

    [Fact]
    public void Apply_IndexAtOrBelowApplied_IsSkippedAndChangesNothing()
    {
        using var dir = new TempDirectory();
        using (var state = Members.OpenState(dir.Path))
        {
            state.Apply(1, Encode(Commands.Register(Alice, 0, 5, [1], false)));
            state.Apply(2, Encode(Commands.Charge(state, Alice, 1)));
        }

        using var reopened = Members.OpenState(dir.Path);

        // A restart replays the log from the start: the entries already applied must not count twice.
        Assert.Empty(reopened.Apply(1, Encode(Commands.Register(Alice, 0, 5, [1], false))));
        Assert.Empty(reopened.Apply(2, Encode(Commands.Charge(reopened, Alice, 1))));
        Assert.Empty(reopened.Apply(2, Encode(Commands.Delete(reopened, Alice))));
        Assert.Equal(2UL, reopened.AppliedIndex);
        Assert.Equal(1, reopened.Read(Alice)!.GuessesUsed);
        Assert.Equal(RecordState.Live, reopened.Read(Alice)!.State);

        var next = VaultCommandCodec.DecodeResult(reopened.Apply(3, Encode(Commands.Charge(reopened, Alice, 1))));
        AssertResult(CommandOutcome.Charged, 3, next);
    }

    [Fact]
    public void Apply_UndecodableEntry_IsRefusedAndChangesNothing()
    {
        using var dir = new TempDirectory();
        using var state = Members.OpenState(dir.Path);
        state.Apply(1, Encode(Commands.Register(Alice, 0, 5, [1], false)));
        var before = state.Read(Alice);

        var result = VaultCommandCodec.DecodeResult(state.Apply(2, [1, 99]));

        Assert.Equal(CommandOutcome.Refused, result.Outcome);
        Assert.Equal(2UL, state.AppliedIndex);
        Assert.Equal((before!.Version, before.GuessesUsed, before.State), (state.Read(Alice)!.Version, state.Read(Alice)!.GuessesUsed, state.Read(Alice)!.State));
    }

    [Fact]
    public void Snapshot_RestoredIntoFreshFolder_GivesIdenticalReads()
    {
        using var dir = new TempDirectory();
        using var source = Members.OpenState(dir.Sub("a"));
        var carol = new UserIdentity("other-tenant", "carol");
        source.Apply(1, Encode(Commands.Register(Alice, 0, 5, [1, 2, 3], false)));
        source.Apply(2, Encode(Commands.Charge(source, Alice, 1)));
        source.Apply(3, Encode(Commands.Register(Bob, 0, 1, [4], false)));
        source.Apply(4, Encode(Commands.Charge(source, Bob, 1)));
        source.Apply(5, Encode(Commands.Charge(source, Bob, 1)));
        source.Apply(6, Encode(Commands.Register(carol, 0, 255, [5], false)));
        source.Apply(7, Encode(Commands.Delete(source, carol)));

        var snapshot = source.CreateSnapshot(out var index);
        using var target = Members.OpenState(dir.Sub("b"));
        target.Apply(1, Encode(Commands.Register(new UserIdentity("stale", "row"), 0, 5, [6], false)));
        target.RestoreSnapshot(index, snapshot);

        Assert.Equal(7UL, index);
        Assert.Equal(7UL, target.AppliedIndex);
        foreach (var user in new[] { Alice, Bob, carol })
        {
            AssertSameRow(source.Read(user), target.Read(user));
        }

        Assert.Equal(RecordState.Destroyed, target.Read(Bob)!.State);
        Assert.Null(target.Read(new UserIdentity("stale", "row")));
        Assert.Equal(snapshot, target.CreateSnapshot(out _));

        // And the restored state is durable.
        target.Dispose();
        using var reopened = Members.OpenState(dir.Sub("b"));
        Assert.Equal(7UL, reopened.AppliedIndex);
        AssertSameRow(source.Read(Alice), reopened.Read(Alice));
    }

    [Fact]
    public async Task CaptureSnapshot_WrittenOnAnotherThreadAfterLaterApplies_HoldsTheStateAsPinned()
    {
        using var dir = new TempDirectory();
        using var state = Members.OpenState(dir.Path);
        state.Apply(1, Encode(Commands.Register(Alice, 0, 5, [1, 2, 3], false)));
        state.Apply(2, Encode(Commands.Charge(state, Alice, 1)));
        var expected = state.CreateSnapshot(out _);

        using var pinned = state.CaptureSnapshot();
        state.Apply(3, Encode(Commands.Charge(state, Alice, 1)));
        state.Apply(4, Encode(Commands.Register(Bob, 0, 1, [4], false)));
        using var written = new MemoryStream();
        await Task.Run(() => pinned.WriteTo(written));

        Assert.Equal(2UL, pinned.Index);
        Assert.Equal(expected, written.ToArray());
        Assert.Equal(2, state.Read(Alice)!.GuessesUsed);
        Assert.NotNull(state.Read(Bob));
    }

    [Fact]
    public void RestoreSnapshot_Truncated_ThrowsAndLeavesStateAsItWas()
    {
        using var dir = new TempDirectory();
        using var source = Members.OpenState(dir.Sub("a"));
        source.Apply(1, Encode(Commands.Register(Alice, 0, 5, [1, 2, 3], false)));
        source.Apply(2, Encode(Commands.Register(Bob, 0, 5, [4, 5], false)));
        var snapshot = source.CreateSnapshot(out var index);
        using var target = Members.OpenState(dir.Sub("b"));
        target.Apply(1, Encode(Commands.Register(Alice, 0, 9, [7], false)));

        for (var length = 0; length < snapshot.Length; length++)
        {
            Assert.NotNull(Record.Exception(() => target.RestoreSnapshot(index, snapshot.AsSpan(0, length))));
        }

        Assert.Equal(1UL, target.AppliedIndex);
        Assert.Equal(9, target.Read(Alice)!.GuessLimit);
        Assert.Null(target.Read(Bob));
    }

    [Fact]
    public void DatabaseFiles_HoldNoPlaintextOfSecretOrRegistrationRecord()
    {
        using var token = Tokens.OpenProvisioned();
        using var dir = new TempDirectory();
        var sealer = new RecordSealer(token, "fleet");
        var marker = Encoding.ASCII.GetBytes("PLAINTEXT-MARKER-4f1c9e");
        var secret = Encoding.ASCII.GetBytes("secret-before:").Concat(marker).Concat(Encoding.ASCII.GetBytes(":secret-after")).ToArray();
        var registrationRecord = new byte[OpaqueSizes.RegistrationRecord];
        for (var i = 0; i + marker.Length <= registrationRecord.Length; i += marker.Length)
        {
            marker.CopyTo(registrationRecord, i);
        }

        byte[] sealedRecord;
        using (var state = Members.OpenState(dir.Path))
        {
            sealedRecord = sealer.Seal(Alice, 1, new RecordContents(new byte[UserIdentity.RegistrationNonceBytes], registrationRecord, 3, secret));
            state.Apply(1, Encode(Commands.Register(Alice, 0, 3, sealedRecord, false)));
            state.Apply(2, Encode(Commands.Charge(state, Alice, 1)));

            // While open, the newest pages are in the WAL: the sealed blob must be there, the plaintext nowhere.
            var files = DatabaseFiles(dir.Path);
            Assert.Contains(files, f => Bytes.FileContains(f, sealedRecord));
            foreach (var file in files)
            {
                Assert.False(Bytes.FileContains(file, marker), $"{Path.GetFileName(file)} holds the plaintext marker");
            }
        }

        foreach (var file in DatabaseFiles(dir.Path))
        {
            Assert.False(Bytes.FileContains(file, marker), $"{Path.GetFileName(file)} holds the plaintext marker after close");
        }

        Assert.Equal(secret, sealer.Unseal(Alice, 1, sealedRecord).EncryptedSecret);
    }

    [Fact]
    public void DestroyedRecord_BlobBytesAreGoneFromDisk()
    {
        using var dir = new TempDirectory();
        var blob = Encoding.ASCII.GetBytes("SEALED-BLOB-THAT-MUST-VANISH-").Concat(Bytes.Random(200)).ToArray();
        var survivorBlob = Encoding.ASCII.GetBytes("SURVIVOR-BLOB-").Concat(Bytes.Random(50)).ToArray();
        using (var state = Members.OpenState(dir.Path))
        {
            state.Apply(1, Encode(Commands.Register(Alice, 0, 1, blob, false)));
            state.Apply(2, Encode(Commands.Register(Bob, 0, 1, survivorBlob, false)));
            Checkpoint(dir.Path);
            Assert.True(Bytes.FileContains(Path.Combine(dir.Path, "vault.db"), blob), "precondition: the blob reached the main file");

            state.Apply(3, Encode(Commands.Charge(state, Alice, 1)));
            var destroyed = VaultCommandCodec.DecodeResult(state.Apply(4, Encode(Commands.Charge(state, Alice, 1))));
            Assert.Equal(CommandOutcome.Destroyed, destroyed.Outcome);
            Checkpoint(dir.Path);

            foreach (var file in DatabaseFiles(dir.Path))
            {
                Assert.False(Bytes.FileContains(file, blob.AsSpan(0, 64)), $"{Path.GetFileName(file)} still holds the destroyed blob");
            }

            Assert.True(Bytes.FileContains(Path.Combine(dir.Path, "vault.db"), survivorBlob), "the other user's blob must remain");
        }

        foreach (var file in DatabaseFiles(dir.Path))
        {
            Assert.False(Bytes.FileContains(file, blob.AsSpan(0, 64)), $"{Path.GetFileName(file)} still holds the destroyed blob after close");
        }
    }

    private static byte[] Encode(VaultCommand command) => Members.Sign(command);

    private static LogEntry Command(ulong index, VaultCommand command) => new(index, 1, LogEntryKind.Command, Encode(command));

    private static string[] DatabaseFiles(string directory) => Directory.GetFiles(directory, "vault.db*");

    /// <summary>Moves the WAL into the main file and truncates the WAL, from a second connection.</summary>
    private static void Checkpoint(string directory)
    {
        using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = Path.Combine(directory, "vault.db"), Pooling = false }.ToString());
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA wal_checkpoint(TRUNCATE);";
        using var reader = command.ExecuteReader();
        Assert.True(reader.Read());
        Assert.Equal(0L, reader.GetInt64(0)); // not busy
    }

    private static void AssertSameRow(StoredRecord? expected, StoredRecord? actual)
    {
        Assert.NotNull(expected);
        Assert.NotNull(actual);
        Assert.Equal(expected.User, actual.User);
        Assert.Equal((expected.Version, expected.State, expected.GuessLimit, expected.GuessesUsed), (actual.Version, actual.State, actual.GuessLimit, actual.GuessesUsed));
        Assert.Equal(expected.SealedRecord, actual.SealedRecord);
    }

    private static void AssertResult(CommandOutcome outcome, int guessesRemaining, CommandResult actual) =>
        Assert.Equal((outcome, guessesRemaining), (actual.Outcome, actual.GuessesRemaining));
}
