using HsmVault.Crypto.Signatures;
using HsmVault.Protocol.Moves;
using HsmVault.Vault.Moves;
using HsmVault.Vault.State;
using RefusalReason = HsmVault.Protocol.V1.RefusalReason;

namespace HsmVault.Vault.Tests;

/// <summary>
/// A user's record moving from one fleet to its successor, over two vaults with their own SoftHSM2
/// tokens: pending on the new fleet, deleted on the old against its signed receipt, live on the new
/// one. At no step does the user hold two live records, and no receipt but the right one activates.
/// </summary>
public sealed class MoveTests : IDisposable
{
    private static readonly UserIdentity Alice = new("tenant", "alice");
    private static readonly UserIdentity Bob = new("tenant", "bob");
    private static readonly byte[] BackupKey = [.. Enumerable.Range(0, 32).Select(i => (byte)i)];

    private readonly VaultHarness _old;
    private readonly VaultHarness _new;

    public MoveTests()
    {
        _old = new VaultHarness(o => o.FleetId = "old-fleet");
        _new = new VaultHarness(o => o.FleetId = "new-fleet",
            predecessors: new PredecessorFleets(new Dictionary<string, SigningKeyDescription> { ["old-fleet"] = _old.Token.SigningKey }));
    }

    public void Dispose()
    {
        _old.Dispose();
        _new.Dispose();
    }

    [Fact]
    public async Task Move_PendingThenReceiptThenActivation_LeavesOneLiveRecordWithItsHistory()
    {
        await _old.RegisterAsync(Alice, "pw", BackupKey, guessLimit: 5, bundleEpoch: 3);

        var (pending, _) = await _new.RegisterAsync(Alice, "pw", BackupKey, guessLimit: 5, movingFrom: "old-fleet", bundleEpoch: 4);
        var waiting = await _new.Service.GetStatusAsync(Alice, CancellationToken.None);
        Assert.True(waiting.MovePending);
        Assert.False(waiting.Registered);
        var notYet = await Assert.ThrowsAsync<VaultException>(() => _new.RecoverAsync(Alice, "pw"));
        Assert.Equal(RefusalReason.MovePending, notYet.Reason);
        Assert.True((await _old.StatusAsync(Alice)).Registered);

        var receipt = await _old.Service.DeleteAsync(Alice, new MoveDestination("new-fleet", pending.RecordVersion), CancellationToken.None);
        Assert.NotNull(receipt);
        Assert.False((await _old.StatusAsync(Alice)).Registered);
        var activated = await _new.Service.ActivateAsync(Alice, receipt, CancellationToken.None);

        Assert.Equal(5, activated.GuessLimit);
        Assert.Equal(["old-fleet", "new-fleet"], activated.History.Select(h => h.FleetId));
        Assert.Equal([3UL, 4UL], activated.History.Select(h => h.Epoch));
        var recovered = await _new.RecoverAsync(Alice, "pw");
        Assert.Equal(BackupKey, recovered.BackupKey);
        var status = await _new.Service.GetStatusAsync(Alice, CancellationToken.None);
        Assert.True(status.Registered);
        Assert.Equal(activated.History, status.History);
    }

    [Fact]
    public async Task Activate_TheSameReceiptAgain_SucceedsAndChangesNothing()
    {
        var receipt = await MoveAliceAsync();
        var once = await _new.Service.GetStatusAsync(Alice, CancellationToken.None);

        var again = await _new.Service.ActivateAsync(Alice, receipt, CancellationToken.None);

        Assert.Equal(once.History, again.History);
        Assert.Equal(once, await _new.Service.GetStatusAsync(Alice, CancellationToken.None) with { History = once.History });
    }

    [Fact]
    public async Task Delete_WithMoveTo_WhenNothingIsLive_SignsAReceiptEveryTime()
    {
        // A lost answer is asked again: the old fleet still says that it holds no live record.
        var first = await _old.Service.DeleteAsync(Bob, new MoveDestination("new-fleet", 1), CancellationToken.None);
        var second = await _old.Service.DeleteAsync(Bob, new MoveDestination("new-fleet", 1), CancellationToken.None);

        Assert.Equal(first!.Receipt, second!.Receipt);
        Assert.True(_old.Token.SigningKey.Verifies(second.Receipt, second.Signature));
        Assert.Empty(MoveReceipt.Decode(second.Receipt).History);
    }

    [Fact]
    public async Task Activate_WithAReceiptForAnotherVersion_IsRefusedAndTheRecordStaysPending()
    {
        await _old.RegisterAsync(Alice, "pw", BackupKey);
        var (pending, _) = await _new.RegisterAsync(Alice, "pw", BackupKey, movingFrom: "old-fleet");
        var stale = await _old.Service.DeleteAsync(Alice, new MoveDestination("new-fleet", pending.RecordVersion), CancellationToken.None);
        // Registered pending once more (an interrupted move, retried): the old receipt is for the version before.
        await _new.RegisterAsync(Alice, "pw", BackupKey, movingFrom: "old-fleet");

        var e = await Assert.ThrowsAsync<VaultException>(() => _new.Service.ActivateAsync(Alice, stale!, CancellationToken.None));

        Assert.Equal(RefusalReason.MoveRefused, e.Reason);
        Assert.Contains("version", e.Message, StringComparison.Ordinal);
        Assert.True((await _new.Service.GetStatusAsync(Alice, CancellationToken.None)).MovePending);
    }

    [Fact]
    public async Task Activate_WithAReceiptNotFromAPredecessorOrNotForThisMove_IsRefusedNamingWhy()
    {
        await _old.RegisterAsync(Alice, "pw", BackupKey);
        var (pending, _) = await _new.RegisterAsync(Alice, "pw", BackupKey, movingFrom: "old-fleet");
        var version = pending.RecordVersion;
        using var stranger = new VaultHarness(o => o.FleetId = "old-fleet");
        var genuine = (await _old.Service.DeleteAsync(Alice, new MoveDestination("new-fleet", version), CancellationToken.None))!;

        var refusals = new (string Case, SignedMoveReceipt Receipt, string Expected)[]
        {
            ("signed by another token", (await stranger.Service.DeleteAsync(Alice, new MoveDestination("new-fleet", version), CancellationToken.None))!, "does not verify"),
            ("for another fleet", (await _old.Service.DeleteAsync(Alice, new MoveDestination("third-fleet", version), CancellationToken.None))!, "not to this fleet"),
            ("for another user", (await _old.Service.DeleteAsync(Bob, new MoveDestination("new-fleet", version), CancellationToken.None))!, "another user"),
            ("with a flipped bit", genuine with { Signature = [.. genuine.Signature[..^1], (byte)(genuine.Signature[^1] ^ 1)] }, "does not verify"),
            ("not a receipt", genuine with { Receipt = [1, 2, 3] }, "not a move receipt"),
        };
        foreach (var (name, receipt, expected) in refusals)
        {
            var e = await Assert.ThrowsAsync<VaultException>(() => _new.Service.ActivateAsync(Alice, receipt, CancellationToken.None));
            Assert.True(e.Message.Contains(expected, StringComparison.Ordinal), $"{name}: {e.Message}");
            Assert.True((await _new.Service.GetStatusAsync(Alice, CancellationToken.None)).MovePending, name);
        }
    }

    [Fact]
    public async Task PendingRegistration_OverALiveRecordOrFromAFleetNotAPredecessor_IsRefused()
    {
        await _new.RegisterAsync(Alice, "pw", BackupKey);

        var overLive = await Assert.ThrowsAsync<VaultException>(() => _new.RegisterAsync(Alice, "pw2", BackupKey, replace: true, movingFrom: "old-fleet"));
        var unknown = await Assert.ThrowsAsync<VaultException>(() => _new.RegisterAsync(Bob, "pw", BackupKey, movingFrom: "some-fleet"));

        Assert.Equal(RefusalReason.MoveRefused, overLive.Reason);
        Assert.Equal(RefusalReason.MoveRefused, unknown.Reason);
        Assert.Contains("not a predecessor", unknown.Message, StringComparison.Ordinal);
        Assert.True((await _new.StatusAsync(Alice)).Registered);
        Assert.Equal(10, (await _new.RecoverAsync(Alice, "pw")).Finish.GuessesRemaining);
        Assert.False((await _new.Service.GetStatusAsync(Bob, CancellationToken.None)).MovePending);
    }

    [Fact]
    public void Apply_AnActivationWhoseReceiptNoPredecessorSigned_IsRefusedWhereverItCameFrom()
    {
        // A member (or whoever holds its token) proposes an activation without checking the receipt:
        // every member checks it again at apply, and the record stays pending.
        using var members = new TestMembers("member-1");
        using var dir = new TempDirectory();
        using var state = members.OpenState(dir.Path);
        state.Apply(1, members.Sign(Commands.Register(Alice, 0, 10, [1], false) with { Pending = true }));
        var receipt = new MoveReceipt("old-fleet", "test-fleet", Alice.Tenant, Alice.UserId, 1, []).Encode();

        var result = state.Apply(2, members.Sign(new ActivateCommand(Alice, 1, receipt, SignatureAlgorithm.Ed25519, new byte[64])));

        Assert.Equal(CommandOutcome.Refused, VaultCommandCodec.DecodeResult(result).Outcome);
        Assert.Equal(RecordState.Pending, state.Read(Alice)!.State);
    }

    [Fact]
    public void Snapshot_CarriesPendingRecordsAndHistories()
    {
        using var members = new TestMembers("member-1");
        using var dir = new TempDirectory();
        using var state = members.OpenState(dir.Path);
        var registered = new RegistrationEvent("test-fleet", 9, 1_790_000_000_000);
        state.Apply(1, members.Sign(Commands.Register(Alice, 0, 10, [1], false) with { Registered = registered }));
        state.Apply(2, members.Sign(Commands.Register(Bob, 0, 4, [2], false) with { Registered = registered, Pending = true }));
        using var copyDir = new TempDirectory();
        using var copy = members.OpenState(copyDir.Path);

        copy.RestoreSnapshot(2, state.CreateSnapshot(out _));

        Assert.Equal([registered], copy.Read(Alice)!.Registrations);
        Assert.Equal(RecordState.Pending, copy.Read(Bob)!.State);
        Assert.Equal(state.Read(Bob)!.History, copy.Read(Bob)!.History);
    }

    [Fact]
    public void Transitions_PendingRecord_CannotBeChargedButCanBeDeleted()
    {
        var pending = new StoredRecord(Alice, 1, RecordState.Pending, 10, 0, [1]);

        Assert.Equal(CommandOutcome.MovePending, RecordTransitions.Apply(pending, new ChargeGuessCommand(Alice, 1, 0, new byte[16])).Result.Outcome);
        Assert.Equal(CommandOutcome.MovePending, RecordTransitions.Apply(pending, new ResetGuessesCommand(Alice, 1, 1)).Result.Outcome);
        var (deleted, result) = RecordTransitions.Apply(pending, new DeleteCommand(Alice, 1));
        Assert.Equal(CommandOutcome.Deleted, result.Outcome);
        Assert.Equal(RecordState.Deleted, deleted!.State);
    }

    [Fact]
    public void Receipt_RoundTripsExactly_AndAnythingElseIsRefusedNamingWhy()
    {
        var receipt = new MoveReceipt("old-fleet", "new-fleet", "https://issuer.example/ü", "alice@example.com", 7,
            [new RegistrationEvent("first", 1, 1_700_000_000_000), new RegistrationEvent("old-fleet", 2, 1_800_000_000_000)]);
        var encoded = receipt.Encode();

        var decoded = MoveReceipt.Decode(encoded);

        Assert.Equal(receipt with { History = decoded.History }, decoded);
        Assert.Equal(receipt.History, decoded.History);
        Assert.Equal(encoded, decoded.Encode());
        for (var length = 0; length < encoded.Length; length++)
        {
            Assert.Throws<FormatException>(() => MoveReceipt.Decode(encoded.AsSpan(0, length)));
        }

        Assert.Contains("follow the end", Assert.Throws<FormatException>(() => MoveReceipt.Decode([.. encoded, 0])).Message, StringComparison.Ordinal);
        Assert.Contains("not a move receipt", Assert.Throws<FormatException>(() => MoveReceipt.Decode("HsmVault registration response v1\0"u8)).Message, StringComparison.Ordinal);
        var noVersion = new MoveReceipt("a", "b", "t", "u", 0, []).Encode();
        Assert.Contains("target version", Assert.Throws<FormatException>(() => MoveReceipt.Decode(noVersion)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void History_KeepsTheNewestEvents()
    {
        var many = Enumerable.Range(0, RegistrationHistory.MaxEvents + 3).Select(i => new RegistrationEvent($"fleet-{i}", (ulong)i, i)).ToList();

        var kept = RegistrationHistory.Append(RegistrationHistory.Empty, many);

        Assert.Equal(RegistrationHistory.MaxEvents, kept.Count);
        Assert.Equal("fleet-3", kept[0].FleetId);
        Assert.Equal(kept, RegistrationHistory.Decode(RegistrationHistory.Encode(kept)));
    }

    private async Task<SignedMoveReceipt> MoveAliceAsync()
    {
        await _old.RegisterAsync(Alice, "pw", BackupKey);
        var (pending, _) = await _new.RegisterAsync(Alice, "pw", BackupKey, movingFrom: "old-fleet");
        var receipt = (await _old.Service.DeleteAsync(Alice, new MoveDestination("new-fleet", pending.RecordVersion), CancellationToken.None))!;
        await _new.Service.ActivateAsync(Alice, receipt, CancellationToken.None);
        return receipt;
    }
}
