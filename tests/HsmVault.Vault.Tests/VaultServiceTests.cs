using HsmVault.Protocol;
using HsmVault.Crypto.Opaque;
using RefusalReason = HsmVault.Protocol.V1.RefusalReason;

namespace HsmVault.Vault.Tests;

/// <summary>The vault end to end in-process: a real token, real SQLite, the single-member log and a real OPAQUE client.</summary>
public sealed class VaultServiceTests : IDisposable
{
    private const string RightPassword = "correct horse battery staple";
    private static readonly UserIdentity Alice = new("https://issuer.example", "alice");
    private static readonly UserIdentity Bob = new("https://issuer.example", "bob");
    private readonly VaultHarness _vault = new();
    private readonly byte[] _backupKey = Bytes.Random(32);

    [Fact]
    public async Task RegisterThenRecover_WithRightPassword_ReleasesBackupKey()
    {
        var (registration, _) = await _vault.RegisterAsync(Alice, RightPassword, _backupKey);

        var recovery = await _vault.RecoverAsync(Alice, RightPassword);

        Assert.Equal((10, false), (registration.GuessLimit, registration.Replaced));
        Assert.Equal(9, recovery.Start.GuessesRemaining);
        Assert.Equal(OpaqueSizes.Ke2, recovery.Start.Ke2.Length);
        Assert.Equal(RecoveryOutcome.Success, recovery.Finish.Outcome);
        Assert.Equal(10, recovery.Finish.GuessesRemaining);
        Assert.Equal(_backupKey, recovery.BackupKey);
        Assert.Equal(new RecordStatus(true, 10, 10, false), await _vault.StatusAsync(Alice));
    }

    [Fact]
    public void Register_ServerPublicKeyInResponse_IsTheTokensAkeKey()
    {
        var start = _vault.Client.CreateRegistrationRequest(VaultHarness.Password(RightPassword));

        var response = _vault.Service.StartRegistration(Alice, start.RegistrationRequest);

        Assert.Equal(_vault.ServerPublicKey, response.RegistrationResponse[32..]);
        start.State.Dispose();
    }

    [Fact]
    public async Task Recover_WrongPassword_KeepsGuessChargedAndSaysRemaining()
    {
        await _vault.RegisterAsync(Alice, RightPassword, _backupKey);

        var recovery = await _vault.RecoverAsync(Alice, "wrong password");

        Assert.False(recovery.ClientAuthenticatedServer);
        Assert.Equal(9, recovery.Start.GuessesRemaining);
        Assert.Equal(RecoveryOutcome.WrongPassword, recovery.Finish.Outcome);
        Assert.Equal(9, recovery.Finish.GuessesRemaining);
        Assert.Null(recovery.Finish.ReleasedSecret);
        Assert.Equal(new RecordStatus(true, 10, 9, false), await _vault.StatusAsync(Alice));
    }

    [Fact]
    public async Task Recover_AfterTenWrongPasswords_DestroysRecord()
    {
        await _vault.RegisterAsync(Alice, RightPassword, _backupKey);

        for (var i = 1; i <= 9; i++)
        {
            var wrong = await _vault.RecoverAsync(Alice, $"wrong {i}");
            Assert.Equal(RecoveryOutcome.WrongPassword, wrong.Finish.Outcome);
            Assert.Equal(10 - i, wrong.Finish.GuessesRemaining);
        }

        var tenth = await _vault.RecoverAsync(Alice, "wrong 10");
        Assert.Equal(0, tenth.Start.GuessesRemaining);
        Assert.Equal(RecoveryOutcome.RecordDestroyed, tenth.Finish.Outcome);
        Assert.Equal(new RecordStatus(false, 10, 0, true), await _vault.StatusAsync(Alice));

        // Not even the right password brings it back.
        var login = _vault.Client.GenerateKe1(VaultHarness.Password(RightPassword));
        var e = await Assert.ThrowsAsync<VaultException>(() => _vault.Service.StartRecoveryAsync(Alice, login.Ke1, [], CancellationToken.None));
        Assert.Equal(VaultError.FailedPrecondition, e.Error);
        Assert.Equal(RefusalReason.RecordDestroyed, e.Reason);
        login.State.Dispose();
    }

    [Fact]
    public async Task Recover_AbandonedAfterLastKe2_NextAttemptFindsRecordDestroyed()
    {
        await _vault.RegisterAsync(Alice, RightPassword, _backupKey, guessLimit: 2);
        await _vault.StartAsync(Alice, "wrong 1");
        var second = await _vault.StartAsync(Alice, "wrong 2");
        Assert.Equal(0, second.Start.GuessesRemaining);

        // The attacker never sends KE3 for the last guess; the guess is spent anyway.
        var e = await Assert.ThrowsAsync<VaultException>(() => _vault.StartAsync(Alice, RightPassword));

        Assert.Equal(RefusalReason.RecordDestroyed, e.Reason);
        Assert.True((await _vault.StatusAsync(Alice)).Destroyed);
    }

    [Fact]
    public async Task Recover_Success_ResetsCount()
    {
        await _vault.RegisterAsync(Alice, RightPassword, _backupKey);
        for (var i = 0; i < 8; i++)
        {
            await _vault.RecoverAsync(Alice, "wrong");
        }

        Assert.Equal(2, (await _vault.StatusAsync(Alice)).GuessesRemaining);

        var recovery = await _vault.RecoverAsync(Alice, RightPassword);

        Assert.Equal(1, recovery.Start.GuessesRemaining);
        Assert.Equal(RecoveryOutcome.Success, recovery.Finish.Outcome);
        Assert.Equal(10, recovery.Finish.GuessesRemaining);
        Assert.Equal(_backupKey, recovery.BackupKey);
        Assert.Equal(10, (await _vault.StatusAsync(Alice)).GuessesRemaining);

        // A full budget again: nine more wrong guesses leave the record alive.
        for (var i = 0; i < 9; i++)
        {
            await _vault.RecoverAsync(Alice, "wrong");
        }

        Assert.Equal(new RecordStatus(true, 10, 1, false), await _vault.StatusAsync(Alice));
    }

    [Fact]
    public async Task StartRecovery_UnknownUser_IsNotFoundAndWritesNothing()
    {
        var applied = _vault.State.AppliedIndex;
        var login = _vault.Client.GenerateKe1(VaultHarness.Password(RightPassword));

        // No fake session: nothing is held for a user without a record, so such calls cannot fill the session table.
        var e = await Assert.ThrowsAsync<VaultException>(() => _vault.Service.StartRecoveryAsync(Bob, login.Ke1, [], CancellationToken.None));

        Assert.Equal(VaultError.NotFound, e.Error);
        Assert.Equal(RefusalReason.NotRegistered, e.Reason);
        Assert.Equal(applied, _vault.State.AppliedIndex);
        Assert.Null(_vault.State.Read(Bob));
        Assert.Equal(new RecordStatus(false, 0, 0, false), await _vault.StatusAsync(Bob));
        login.State.Dispose();
    }
    [Fact]
    public async Task FinishRecovery_AllZeroKe3_IsAWrongPassword()
    {
        await _vault.RegisterAsync(Alice, RightPassword, _backupKey);
        var login = _vault.Client.GenerateKe1(VaultHarness.Password(RightPassword));
        var start = await _vault.Service.StartRecoveryAsync(Alice, login.Ke1, [], CancellationToken.None);

        var finish = await _vault.Service.FinishRecoveryAsync(Alice, start.SessionId, new byte[OpaqueSizes.Ke3], CancellationToken.None);

        Assert.Equal(RecoveryOutcome.WrongPassword, finish.Outcome);
        Assert.Null(finish.ReleasedSecret);
        Assert.Equal(9, (await _vault.StatusAsync(Alice)).GuessesRemaining);
        login.State.Dispose();
    }
    [Fact]
    public async Task Register_OverLiveRecordWithoutReplace_IsRefusedWithAlreadyRegistered()
    {
        await _vault.RegisterAsync(Alice, RightPassword, _backupKey);
        var applied = _vault.State.AppliedIndex;
        var version = _vault.State.Read(Alice)!.Version;

        var e = await Assert.ThrowsAsync<VaultException>(() => _vault.RegisterAsync(Alice, "new password", Bytes.Random(32)));

        Assert.Equal(VaultError.FailedPrecondition, e.Error);
        Assert.Equal(RefusalReason.AlreadyRegistered, e.Reason);
        Assert.Equal(applied, _vault.State.AppliedIndex);
        Assert.Equal(version, _vault.State.Read(Alice)!.Version);
        Assert.Equal(_backupKey, (await _vault.RecoverAsync(Alice, RightPassword)).BackupKey);
    }

    [Fact]
    public async Task Register_WithReplace_ResetsCountAndOnlyNewPasswordWorks()
    {
        await _vault.RegisterAsync(Alice, RightPassword, _backupKey);
        for (var i = 0; i < 5; i++)
        {
            await _vault.RecoverAsync(Alice, "wrong");
        }

        var newKey = Bytes.Random(32);

        var (result, _) = await _vault.RegisterAsync(Alice, "new password", newKey, guessLimit: 4, replace: true);

        Assert.Equal((4, true), (result.GuessLimit, result.Replaced));
        Assert.Equal(new RecordStatus(true, 4, 4, false), await _vault.StatusAsync(Alice));
        Assert.Equal(2, _vault.State.Read(Alice)!.Version);
        var old = await _vault.RecoverAsync(Alice, RightPassword);
        Assert.Equal(RecoveryOutcome.WrongPassword, old.Finish.Outcome);
        var current = await _vault.RecoverAsync(Alice, "new password");
        Assert.Equal(newKey, current.BackupKey);
    }

    [Fact]
    public async Task Register_ReplaceWhenNothingRegistered_IsAPlainRegistration()
    {
        var (result, _) = await _vault.RegisterAsync(Alice, RightPassword, _backupKey, replace: true);

        Assert.Equal((10, false), (result.GuessLimit, result.Replaced));
    }

    [Fact]
    public async Task Register_AfterDestroy_StartsFreshWithoutReplace()
    {
        await _vault.RegisterAsync(Alice, RightPassword, _backupKey, guessLimit: 1);
        await _vault.RecoverAsync(Alice, "wrong");
        Assert.True((await _vault.StatusAsync(Alice)).Destroyed);

        var (result, _) = await _vault.RegisterAsync(Alice, "another", _backupKey, guessLimit: 3);

        Assert.Equal((3, false), (result.GuessLimit, result.Replaced));
        Assert.Equal(new RecordStatus(true, 3, 3, false), await _vault.StatusAsync(Alice));
        Assert.Equal(_backupKey, (await _vault.RecoverAsync(Alice, "another")).BackupKey);
    }

    [Fact]
    public async Task Delete_ThenRecover_IsNotFoundAndReRegisterWorks()
    {
        await _vault.RegisterAsync(Alice, RightPassword, _backupKey);

        await _vault.Service.DeleteAsync(Alice, null, CancellationToken.None);

        Assert.Equal(new RecordStatus(false, 0, 0, false), await _vault.StatusAsync(Alice));
        var notFound = await Assert.ThrowsAsync<VaultException>(() => _vault.RecoverAsync(Alice, RightPassword));
        Assert.Equal(RefusalReason.NotRegistered, notFound.Reason);
        var e = await Assert.ThrowsAsync<VaultException>(() => _vault.Service.DeleteAsync(Alice, null, CancellationToken.None));
        Assert.Equal(VaultError.NotFound, e.Error);
        await _vault.RegisterAsync(Alice, RightPassword, _backupKey);
        Assert.Equal(2, _vault.State.Read(Alice)!.Version);
    }

    [Theory]
    [InlineData(0u, 10)]
    [InlineData(1u, 1)]
    [InlineData(255u, 255)]
    public async Task Register_GuessLimit_ZeroMeansDefault(uint requested, int expected)
    {
        var (result, _) = await _vault.RegisterAsync(Alice, RightPassword, _backupKey, guessLimit: requested);

        Assert.Equal(expected, result.GuessLimit);
        Assert.Equal(expected, (await _vault.StatusAsync(Alice)).GuessLimit);
    }

    [Theory]
    [InlineData(256u)]
    [InlineData(int.MaxValue + 1u)]
    [InlineData(uint.MaxValue)]
    public async Task Register_GuessLimitOutOfRange_IsInvalidArgumentAndChangesNothing(uint guessLimit)
    {
        var (ticket, record, secret) = _vault.PrepareRegistration(Alice, RightPassword, _backupKey);

        await AssertInvalidWithoutChangeAsync(() => _vault.Service.FinishRegistrationAsync(Alice, ticket, record, secret, guessLimit, false, 0, null, CancellationToken.None));
    }

    [Fact]
    public async Task Register_OversizedOrEmptySecret_IsInvalidArgument()
    {
        var (ticket, record, _) = _vault.PrepareRegistration(Alice, RightPassword, _backupKey);

        await AssertInvalidWithoutChangeAsync(() => _vault.Service.FinishRegistrationAsync(Alice, ticket, record, new byte[RecordLimits.MaxEncryptedSecretBytes + 1], 0, false, 0, null, CancellationToken.None));
        await AssertInvalidWithoutChangeAsync(() => _vault.Service.FinishRegistrationAsync(Alice, ticket, record, [], 0, false, 0, null, CancellationToken.None));

        // The largest allowed secret goes through, and comes back intact.
        var largest = Bytes.Random(RecordLimits.MaxEncryptedSecretBytes - 28);
        await _vault.RegisterAsync(Bob, RightPassword, largest);
        Assert.Equal(largest, (await _vault.RecoverAsync(Bob, RightPassword)).BackupKey);
    }

    public static TheoryData<int> WrongRecordLengths => [0, 1, OpaqueSizes.RegistrationRecord - 1, OpaqueSizes.RegistrationRecord + 1, 1000];

    [Theory]
    [MemberData(nameof(WrongRecordLengths))]
    public async Task Register_RecordOfWrongLength_IsInvalidArgument(int length)
    {
        await AssertInvalidWithoutChangeAsync(() => _vault.Service.FinishRegistrationAsync(Alice, [], Bytes.Random(length), [1], 0, false, 0, null, CancellationToken.None));
    }

    [Theory]
    [InlineData(0x00)]
    [InlineData(0xFF)]
    public async Task Register_RecordWithInvalidClientPublicKey_IsInvalidArgument(byte fill)
    {
        var (ticket, record, secret) = _vault.PrepareRegistration(Alice, RightPassword, _backupKey);
        record.AsSpan(0, OpaqueSizes.PublicKey).Fill(fill);

        await AssertInvalidWithoutChangeAsync(() => _vault.Service.FinishRegistrationAsync(Alice, ticket, record, secret, 0, false, 0, null, CancellationToken.None));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(31)]
    [InlineData(33)]
    [InlineData(64)]
    public void StartRegistration_RequestOfWrongLength_IsInvalidArgument(int length)
    {
        var e = Assert.Throws<VaultException>(() => _vault.Service.StartRegistration(Alice, Bytes.Random(length)));

        Assert.Equal(VaultError.InvalidArgument, e.Error);
    }

    [Theory]
    [InlineData(0x00)]
    [InlineData(0xFF)]
    public void StartRegistration_InvalidOrIdentityElement_IsInvalidArgument(byte fill)
    {
        var e = Assert.Throws<VaultException>(() => _vault.Service.StartRegistration(Alice, Bytes.Filled(OpaqueSizes.RegistrationRequest, fill)));

        Assert.Equal(VaultError.InvalidArgument, e.Error);
    }

    public static TheoryData<int> WrongKe1Lengths => [0, OpaqueSizes.Ke1 - 1, OpaqueSizes.Ke1 + 1, 320];

    [Theory]
    [MemberData(nameof(WrongKe1Lengths))]
    public async Task StartRecovery_Ke1OfWrongLength_IsInvalidArgumentAndChargesNothing(int length)
    {
        await _vault.RegisterAsync(Alice, RightPassword, _backupKey);

        await AssertInvalidWithoutChangeAsync(() => _vault.Service.StartRecoveryAsync(Alice, Bytes.Random(length), [], CancellationToken.None));
    }

    [Theory]
    [InlineData(0x00, 0)]
    [InlineData(0xFF, 0)]
    [InlineData(0x00, 64)]
    [InlineData(0xFF, 64)]
    public async Task StartRecovery_Ke1WithInvalidElement_IsInvalidArgumentAndChargesNothing(byte fill, int offset)
    {
        // Offset 0: the blinded element; offset 64: the client public keyshare.
        await _vault.RegisterAsync(Alice, RightPassword, _backupKey);
        var login = _vault.Client.GenerateKe1(VaultHarness.Password(RightPassword));
        var ke1 = (byte[])login.Ke1.Clone();
        ke1.AsSpan(offset, 32).Fill(fill);

        await AssertInvalidWithoutChangeAsync(() => _vault.Service.StartRecoveryAsync(Alice, ke1, [], CancellationToken.None));

        // Checked before the record is looked up: unknown users get the same answer.
        await AssertInvalidWithoutChangeAsync(() => _vault.Service.StartRecoveryAsync(Bob, ke1, [], CancellationToken.None));
        login.State.Dispose();
    }

    [Theory]
    [InlineData(0, OpaqueSizes.Ke3)]
    [InlineData(15, OpaqueSizes.Ke3)]
    [InlineData(17, OpaqueSizes.Ke3)]
    [InlineData(16, 0)]
    [InlineData(16, OpaqueSizes.Ke3 - 1)]
    [InlineData(16, OpaqueSizes.Ke3 + 1)]
    public async Task FinishRecovery_WrongLengths_AreInvalidArgumentAndSessionSurvives(int sessionIdLength, int ke3Length)
    {
        await _vault.RegisterAsync(Alice, RightPassword, _backupKey);
        var (start, client) = await _vault.StartAsync(Alice, RightPassword);
        var sessionId = sessionIdLength == RecoverySessionIdLength ? start.SessionId : Bytes.Random(sessionIdLength);

        await AssertInvalidWithoutChangeAsync(() => _vault.Service.FinishRecoveryAsync(Alice, sessionId, Bytes.Random(ke3Length), CancellationToken.None));

        var finish = await _vault.Service.FinishRecoveryAsync(Alice, start.SessionId, client!.Ke3, CancellationToken.None);
        Assert.Equal(RecoveryOutcome.Success, finish.Outcome);
    }

    [Fact]
    public async Task FinishRecovery_ReplayedKe3_IsUnknownSessionAndChangesNothing()
    {
        await _vault.RegisterAsync(Alice, RightPassword, _backupKey);
        var (start, client) = await _vault.StartAsync(Alice, RightPassword);
        var first = await _vault.Service.FinishRecoveryAsync(Alice, start.SessionId, client!.Ke3, CancellationToken.None);
        Assert.Equal(RecoveryOutcome.Success, first.Outcome);
        var applied = _vault.State.AppliedIndex;
        var status = await _vault.StatusAsync(Alice);

        var e = await Assert.ThrowsAsync<VaultException>(() => _vault.Service.FinishRecoveryAsync(Alice, start.SessionId, client.Ke3, CancellationToken.None));

        Assert.Equal(VaultError.FailedPrecondition, e.Error);
        Assert.Equal(RefusalReason.UnknownSession, e.Reason);
        Assert.Equal(applied, _vault.State.AppliedIndex);
        Assert.Equal(status, await _vault.StatusAsync(Alice));
    }

    [Fact]
    public async Task FinishRecovery_ReplayAfterWrongPassword_IsUnknownSessionAndChargesNothingMore()
    {
        await _vault.RegisterAsync(Alice, RightPassword, _backupKey);
        var (start, _) = await _vault.StartAsync(Alice, "wrong");
        var ke3 = Bytes.Random(OpaqueSizes.Ke3);
        await _vault.Service.FinishRecoveryAsync(Alice, start.SessionId, ke3, CancellationToken.None);
        var applied = _vault.State.AppliedIndex;

        var e = await Assert.ThrowsAsync<VaultException>(() => _vault.Service.FinishRecoveryAsync(Alice, start.SessionId, ke3, CancellationToken.None));

        Assert.Equal(RefusalReason.UnknownSession, e.Reason);
        Assert.Equal(applied, _vault.State.AppliedIndex);
        Assert.Equal(9, (await _vault.StatusAsync(Alice)).GuessesRemaining);
    }

    [Fact]
    public async Task FinishRecovery_WithoutStart_IsFailedPrecondition()
    {
        await _vault.RegisterAsync(Alice, RightPassword, _backupKey);
        var applied = _vault.State.AppliedIndex;

        var e = await Assert.ThrowsAsync<VaultException>(() =>
            _vault.Service.FinishRecoveryAsync(Alice, Bytes.Random(RecoverySessionIdLength), Bytes.Random(OpaqueSizes.Ke3), CancellationToken.None));

        Assert.Equal(VaultError.FailedPrecondition, e.Error);
        Assert.Equal(RefusalReason.UnknownSession, e.Reason);
        Assert.Equal(applied, _vault.State.AppliedIndex);
        Assert.Equal(10, (await _vault.StatusAsync(Alice)).GuessesRemaining);
    }

    [Fact]
    public async Task FinishRecovery_AnotherUsersSession_IsFailedPreconditionAndOwnersSessionStillWorks()
    {
        await _vault.RegisterAsync(Alice, RightPassword, _backupKey);
        await _vault.RegisterAsync(Bob, "bob's password", Bytes.Random(32));
        var (aliceStart, aliceClient) = await _vault.StartAsync(Alice, RightPassword);
        var applied = _vault.State.AppliedIndex;

        // Bob presents Alice's session id with Alice's own (valid) KE3: it must not be his way in, nor cancel hers.
        var e = await Assert.ThrowsAsync<VaultException>(() => _vault.Service.FinishRecoveryAsync(Bob, aliceStart.SessionId, aliceClient!.Ke3, CancellationToken.None));

        Assert.Equal(VaultError.FailedPrecondition, e.Error);
        Assert.Equal(RefusalReason.UnknownSession, e.Reason);
        Assert.Equal(applied, _vault.State.AppliedIndex);
        Assert.Equal(10, (await _vault.StatusAsync(Bob)).GuessesRemaining);
        var finish = await _vault.Service.FinishRecoveryAsync(Alice, aliceStart.SessionId, aliceClient!.Ke3, CancellationToken.None);
        Assert.Equal(RecoveryOutcome.Success, finish.Outcome);
    }

    [Fact]
    public async Task FinishRecovery_ExpiredSession_IsFailedPreconditionAndGuessStaysCharged()
    {
        await _vault.RegisterAsync(Alice, RightPassword, _backupKey);
        var (start, client) = await _vault.StartAsync(Alice, RightPassword);
        _vault.Time.Advance(_vault.Options.RecoverySessionTimeout + TimeSpan.FromSeconds(1));
        var applied = _vault.State.AppliedIndex;

        var e = await Assert.ThrowsAsync<VaultException>(() => _vault.Service.FinishRecoveryAsync(Alice, start.SessionId, client!.Ke3, CancellationToken.None));

        Assert.Equal(VaultError.FailedPrecondition, e.Error);
        Assert.Equal(RefusalReason.UnknownSession, e.Reason);
        Assert.Equal(applied, _vault.State.AppliedIndex);
        Assert.Equal(9, (await _vault.StatusAsync(Alice)).GuessesRemaining);
    }

    [Fact]
    public async Task FinishRecovery_JustBeforeExpiry_Succeeds()
    {
        await _vault.RegisterAsync(Alice, RightPassword, _backupKey);
        var (start, client) = await _vault.StartAsync(Alice, RightPassword);
        _vault.Time.Advance(_vault.Options.RecoverySessionTimeout - TimeSpan.FromSeconds(1));

        var finish = await _vault.Service.FinishRecoveryAsync(Alice, start.SessionId, client!.Ke3, CancellationToken.None);

        Assert.Equal(RecoveryOutcome.Success, finish.Outcome);
    }

    [Fact]
    public async Task FinishRecovery_RecordReplacedMeanwhile_IsFailedPreconditionAndReleasesNothing()
    {
        await _vault.RegisterAsync(Alice, RightPassword, _backupKey);
        var (start, client) = await _vault.StartAsync(Alice, RightPassword);
        await _vault.RegisterAsync(Alice, "new password", Bytes.Random(32), guessLimit: 5, replace: true);

        var e = await Assert.ThrowsAsync<VaultException>(() => _vault.Service.FinishRecoveryAsync(Alice, start.SessionId, client!.Ke3, CancellationToken.None));

        Assert.Equal(VaultError.FailedPrecondition, e.Error);
        Assert.Equal(new RecordStatus(true, 5, 5, false), await _vault.StatusAsync(Alice));
    }

    [Fact]
    public async Task FinishRecovery_RecordDeletedMeanwhile_IsFailedPrecondition()
    {
        await _vault.RegisterAsync(Alice, RightPassword, _backupKey);
        var (start, client) = await _vault.StartAsync(Alice, RightPassword);
        await _vault.Service.DeleteAsync(Alice, null, CancellationToken.None);

        var e = await Assert.ThrowsAsync<VaultException>(() => _vault.Service.FinishRecoveryAsync(Alice, start.SessionId, client!.Ke3, CancellationToken.None));

        Assert.Equal(VaultError.FailedPrecondition, e.Error);
        Assert.Equal(new RecordStatus(false, 0, 0, false), await _vault.StatusAsync(Alice));
    }

    [Fact]
    public async Task StartRecovery_TamperedSealedRecord_IsDataLossAndChargesNothing()
    {
        await _vault.RegisterAsync(Alice, RightPassword, _backupKey);
        var sealedRecord = _vault.State.Read(Alice)!.SealedRecord!;
        var tampered = (byte[])sealedRecord.Clone();
        tampered[sealedRecord.Length / 2] ^= 0x01;
        _vault.TamperWithDatabase("UPDATE records SET sealed = $b WHERE user_id = 'alice'", ("$b", tampered));
        var applied = _vault.State.AppliedIndex;

        var e = await Assert.ThrowsAsync<VaultException>(() => _vault.StartAsync(Alice, RightPassword));

        Assert.Equal(VaultError.DataLoss, e.Error);
        Assert.Equal(applied, _vault.State.AppliedIndex);
        Assert.Equal(0, _vault.State.Read(Alice)!.GuessesUsed);
    }

    [Fact]
    public async Task StartRecovery_GuessLimitRaisedOnDisk_IsDataLossAndChargesNothing()
    {
        await _vault.RegisterAsync(Alice, RightPassword, _backupKey, guessLimit: 3);
        _vault.TamperWithDatabase("UPDATE records SET guess_limit = 255 WHERE user_id = 'alice'");
        var applied = _vault.State.AppliedIndex;

        var e = await Assert.ThrowsAsync<VaultException>(() => _vault.StartAsync(Alice, RightPassword));

        Assert.Equal(VaultError.DataLoss, e.Error);
        Assert.Equal(applied, _vault.State.AppliedIndex);
    }

    [Fact]
    public async Task StartRecovery_OlderSealedRecordPutBack_IsDataLoss()
    {
        // Rolling a replaced record back to its old blob (old password) must not work.
        await _vault.RegisterAsync(Alice, RightPassword, _backupKey);
        var oldBlob = _vault.State.Read(Alice)!.SealedRecord!;
        await _vault.RegisterAsync(Alice, "new password", Bytes.Random(32), replace: true);
        _vault.TamperWithDatabase("UPDATE records SET sealed = $b WHERE user_id = 'alice'", ("$b", oldBlob));

        var e = await Assert.ThrowsAsync<VaultException>(() => _vault.StartAsync(Alice, RightPassword));

        Assert.Equal(VaultError.DataLoss, e.Error);
    }

    [Fact]
    public async Task StartRecovery_AnotherUsersBlobCopiedOver_IsDataLoss()
    {
        await _vault.RegisterAsync(Alice, RightPassword, _backupKey);
        await _vault.RegisterAsync(Bob, "bob's password", Bytes.Random(32));
        _vault.TamperWithDatabase("UPDATE records SET sealed = $b WHERE user_id = 'bob'", ("$b", _vault.State.Read(Alice)!.SealedRecord!));

        var e = await Assert.ThrowsAsync<VaultException>(() => _vault.StartAsync(Bob, RightPassword));

        Assert.Equal(VaultError.DataLoss, e.Error);
    }

    [Fact]
    public async Task Recovery_DifferentTenantsSameUserId_AreDifferentRecords()
    {
        var otherTenant = new UserIdentity("https://other.example", "alice");
        await _vault.RegisterAsync(Alice, RightPassword, _backupKey);

        var e = await Assert.ThrowsAsync<VaultException>(() => _vault.RecoverAsync(otherTenant, RightPassword));

        Assert.Equal(RefusalReason.NotRegistered, e.Reason);
        Assert.Equal(10, (await _vault.StatusAsync(Alice)).GuessesRemaining);
    }
    [Fact]
    public async Task StartRecovery_TooManySessionsInFlight_IsResourceExhaustedBeforeCharging()
    {
        using var vault = new VaultHarness(o => (o.MaxRecoverySessions, o.MaxRecoverySessionsPerTenant) = (2, 2));
        await vault.RegisterAsync(Alice, RightPassword, _backupKey);
        await vault.StartAsync(Alice, RightPassword);
        await vault.StartAsync(Alice, RightPassword);
        var applied = vault.State.AppliedIndex;

        var e = await Assert.ThrowsAsync<VaultException>(() => vault.StartAsync(Alice, RightPassword));

        Assert.Equal(VaultError.ResourceExhausted, e.Error);
        Assert.Equal(applied, vault.State.AppliedIndex);
        Assert.Equal(8, (await vault.StatusAsync(Alice)).GuessesRemaining);

        // Expired sessions make room again.
        vault.Time.Advance(vault.Options.RecoverySessionTimeout + TimeSpan.FromSeconds(1));
        Assert.Equal(RecoveryOutcome.Success, (await vault.RecoverAsync(Alice, RightPassword)).Finish.Outcome);
    }

    [Fact]
    public async Task Service_RestartedOnSameDatabase_KeepsCountsAndStillRecovers()
    {
        await _vault.RegisterAsync(Alice, RightPassword, _backupKey);
        await _vault.RecoverAsync(Alice, "wrong");
        var applied = _vault.State.AppliedIndex;

        _vault.Restart();

        Assert.Equal(applied, _vault.State.AppliedIndex);
        Assert.Equal(new RecordStatus(true, 10, 9, false), await _vault.StatusAsync(Alice));
        Assert.Equal(_backupKey, (await _vault.RecoverAsync(Alice, RightPassword)).BackupKey);
    }

    [Fact]
    public async Task Service_RestartedMidRecovery_ForgetsSessionButGuessStaysCharged()
    {
        await _vault.RegisterAsync(Alice, RightPassword, _backupKey);
        var (start, client) = await _vault.StartAsync(Alice, RightPassword);

        _vault.Restart();

        var e = await Assert.ThrowsAsync<VaultException>(() => _vault.Service.FinishRecoveryAsync(Alice, start.SessionId, client!.Ke3, CancellationToken.None));
        Assert.Equal(RefusalReason.UnknownSession, e.Reason);
        Assert.Equal(9, (await _vault.StatusAsync(Alice)).GuessesRemaining);
    }

    private const int RecoverySessionIdLength = 16;

    public void Dispose() => _vault.Dispose();

    /// <summary>Asserts InvalidArgument, and that neither the applied index nor any user's status moved.</summary>
    private async Task AssertInvalidWithoutChangeAsync(Func<Task> action)
    {
        var applied = _vault.State.AppliedIndex;
        var alice = await _vault.StatusAsync(Alice);
        var bob = await _vault.StatusAsync(Bob);

        var e = await Assert.ThrowsAsync<VaultException>(action);

        Assert.Equal(VaultError.InvalidArgument, e.Error);
        Assert.Equal(applied, _vault.State.AppliedIndex);
        Assert.Equal(alice, await _vault.StatusAsync(Alice));
        Assert.Equal(bob, await _vault.StatusAsync(Bob));
    }
}
