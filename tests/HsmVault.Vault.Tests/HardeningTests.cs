using System.Security.Cryptography;
using HsmVault.Vault.State;
using RefusalReason = HsmVault.Protocol.V1.RefusalReason;

namespace HsmVault.Vault.Tests;

/// <summary>
/// The holes an outside review found in the vault's own logic (issue 6): a replayed
/// registration, a charged guess without its answer, and user text in logs. Each of these
/// failed before the change.
/// </summary>
public sealed class HardeningTests : IDisposable
{
    private static readonly UserIdentity Alice = new("https://issuer.example", "alice");
    private readonly VaultHarness _vault = new();
    private readonly byte[] _backupKey = RandomNumberGenerator.GetBytes(32);

    [Fact]
    public async Task FinishRegistration_Replayed_IsRefusedAndTheCountIsNotReset()
    {
        var (ticket, record, encrypted) = _vault.PrepareRegistration(Alice, "right", _backupKey);
        await _vault.Service.FinishRegistrationAsync(Alice, ticket, record, encrypted, 10, replaceExisting: false, 0, null, CancellationToken.None);
        await _vault.RecoverAsync(Alice, "wrong");
        await _vault.RecoverAsync(Alice, "wrong again");

        // The tenant's backend captured the request and holds the user's JWT: it sends it again.
        var e = await Assert.ThrowsAsync<VaultException>(() =>
            _vault.Service.FinishRegistrationAsync(Alice, ticket, record, encrypted, 10, replaceExisting: true, 0, null, CancellationToken.None));

        Assert.Equal(VaultError.FailedPrecondition, e.Error);
        Assert.Equal(RefusalReason.TicketAlreadyUsed, e.Reason);
        Assert.Equal(8, (await _vault.StatusAsync(Alice)).GuessesRemaining);
    }

    [Fact]
    public async Task StartRecovery_CommitWhoseAnswerIsLost_StillAnswersWithOneCharge()
    {
        await _vault.RegisterAsync(Alice, "right", _backupKey);
        _vault.Log.LoseAnswer = command => command is ChargeGuessCommand;

        var recovery = await _vault.RecoverAsync(Alice, "right");

        Assert.Equal(RecoveryOutcome.Success, recovery.Finish.Outcome);
        Assert.Equal(_backupKey, recovery.BackupKey);
        Assert.Equal(1, _vault.State.Read(Alice)!.AttemptSerial);
    }

    [Fact]
    public async Task StartRecovery_CommitWhoseAnswerIsLost_AnswersWhatItsChargeLeftNotTheCountAfterALaterReset()
    {
        await _vault.RegisterAsync(Alice, "right", _backupKey);
        var lost = LoseTheFirstChargesAnswer(() =>
        {
            // Before this member finds out what its charge did, the user logs in elsewhere with
            // the right password: one more charge, then the proven password resets the count.
            var elsewhere = _vault.RecoverAsync(Alice, "right").GetAwaiter().GetResult();
            Assert.Equal(RecoveryOutcome.Success, elsewhere.Finish.Outcome);
        });

        var (start, _) = await _vault.StartAsync(Alice, "wrong");

        Assert.True(lost());
        Assert.Equal(9, start.GuessesRemaining);
        Assert.Equal(10, (await _vault.StatusAsync(Alice)).GuessesRemaining);
    }

    [Fact]
    public async Task StartRecovery_LastGuessWhoseAnswerIsLostAndUnconfirmed_IsAnsweredNotDestroyedByItsOwnCopy()
    {
        await _vault.RegisterAsync(Alice, "right", _backupKey, guessLimit: 1);
        var lost = LoseTheFirstChargesAnswer(() =>
        {
            // The charge of the last guess committed, its answer was lost, and the member cannot
            // confirm at once what it did: it proposes the same charge again.
            _vault.Log.FailReadBarriers = 1;
        });

        var recovery = await _vault.RecoverAsync(Alice, "right");

        Assert.True(lost());
        Assert.Equal(0, recovery.Start.GuessesRemaining);
        Assert.Equal(RecoveryOutcome.Success, recovery.Finish.Outcome);
        Assert.Equal(_backupKey, recovery.BackupKey);
        Assert.Equal(1, _vault.State.Read(Alice)!.AttemptSerial);
    }

    [Fact]
    public async Task StartRecovery_ChargeWhoseAnswerIsLost_ThenRecordReplaced_IsUnknownNeverASecondCharge()
    {
        await _vault.RegisterAsync(Alice, "right", _backupKey);
        var lost = LoseTheFirstChargesAnswer(() =>
        {
            // Before this member finds out what its charge did, the user registers again.
            _vault.RegisterAsync(Alice, "new", _backupKey, replace: true).GetAwaiter().GetResult();
        });

        var e = await Assert.ThrowsAsync<VaultException>(() => _vault.StartAsync(Alice, "right"));

        Assert.True(lost());
        Assert.Equal(VaultError.Unavailable, e.Error);
        Assert.Contains("did not confirm whether this attempt charged a guess", e.Message, StringComparison.Ordinal);
        // The new record was never charged for an attempt made against the old one.
        Assert.Equal(10, (await _vault.StatusAsync(Alice)).GuessesRemaining);
    }

    [Fact]
    public async Task StartRecovery_CallerGaveUp_SameRequestIdFetchesTheSameAnswer()
    {
        await _vault.RegisterAsync(Alice, "right", _backupKey);
        var login = _vault.Client.GenerateKe1(VaultHarness.Password("right"));
        var requestId = RandomNumberGenerator.GetBytes(16);
        var slowMajority = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _vault.Log.Hold = slowMajority.Task;

        using (var deadline = new CancellationTokenSource())
        {
            var first = _vault.Service.StartRecoveryAsync(Alice, login.Ke1, requestId, deadline.Token);
            await deadline.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => first);
        }

        slowMajority.SetResult();
        _vault.Log.Hold = null;
        var again = await _vault.Service.StartRecoveryAsync(Alice, login.Ke1, requestId, CancellationToken.None);
        var andAgain = await _vault.Service.StartRecoveryAsync(Alice, login.Ke1, requestId, CancellationToken.None);

        Assert.Equal(again.SessionId, andAgain.SessionId);
        Assert.Equal(9, again.GuessesRemaining);
        Assert.Equal(9, (await _vault.StatusAsync(Alice)).GuessesRemaining);
        var finish = _vault.Client.GenerateKe3(login.State, again.Ke2);
        Assert.NotNull(finish);
        var finished = await _vault.Service.FinishRecoveryAsync(Alice, again.SessionId, finish.Ke3, CancellationToken.None);
        Assert.Equal(RecoveryOutcome.Success, finished.Outcome);
        login.State.Dispose();
    }

    [Fact]
    public async Task StartRecovery_FailedBeforeAnyCharge_SameRequestIdRunsAgain()
    {
        var login = _vault.Client.GenerateKe1(VaultHarness.Password("right"));
        var requestId = RandomNumberGenerator.GetBytes(16);
        await Assert.ThrowsAsync<VaultException>(() => _vault.Service.StartRecoveryAsync(Alice, login.Ke1, requestId, CancellationToken.None));
        await _vault.RegisterAsync(Alice, "right", _backupKey);

        var start = await _vault.Service.StartRecoveryAsync(Alice, login.Ke1, requestId, CancellationToken.None);

        Assert.Equal(9, start.GuessesRemaining);
        login.State.Dispose();
    }

    [Fact]
    public async Task StartRecovery_RequestIdReusedWithAnotherKe1_IsInvalidArgument()
    {
        await _vault.RegisterAsync(Alice, "right", _backupKey);
        var requestId = RandomNumberGenerator.GetBytes(16);
        var first = _vault.Client.GenerateKe1(VaultHarness.Password("right"));
        var second = _vault.Client.GenerateKe1(VaultHarness.Password("right"));
        await _vault.Service.StartRecoveryAsync(Alice, first.Ke1, requestId, CancellationToken.None);

        var e = await Assert.ThrowsAsync<VaultException>(() => _vault.Service.StartRecoveryAsync(Alice, second.Ke1, requestId, CancellationToken.None));

        Assert.Equal(VaultError.InvalidArgument, e.Error);
        Assert.Equal(9, (await _vault.StatusAsync(Alice)).GuessesRemaining);
        first.State.Dispose();
        second.State.Dispose();
    }

    [Fact]
    public async Task FinishRecovery_ResetNotConfirmed_CanBeFinishedAgain()
    {
        await _vault.RegisterAsync(Alice, "right", _backupKey);
        await _vault.RecoverAsync(Alice, "wrong");
        var (start, client) = await _vault.StartAsync(Alice, "right");
        _vault.Log.LoseAnswer = command => command is ResetGuessesCommand;

        var e = await Assert.ThrowsAsync<VaultException>(() => _vault.Service.FinishRecoveryAsync(Alice, start.SessionId, client!.Ke3, CancellationToken.None));
        _vault.Log.LoseAnswer = null;
        var retried = await _vault.Service.FinishRecoveryAsync(Alice, start.SessionId, client!.Ke3, CancellationToken.None);

        Assert.Equal(VaultError.Unavailable, e.Error);
        Assert.Contains("same session_id", e.Message, StringComparison.Ordinal);
        Assert.Equal(RecoveryOutcome.Success, retried.Outcome);
        Assert.NotNull(retried.ReleasedSecret);
        Assert.Equal(10, (await _vault.StatusAsync(Alice)).GuessesRemaining);
    }

    [Fact]
    public async Task StartRecovery_PerUserQuota_IsRefusedBeforeCharging()
    {
        using var vault = new VaultHarness(o => o.MaxRecoverySessionsPerUser = 2);
        await vault.RegisterAsync(Alice, "right", _backupKey);
        await vault.StartAsync(Alice, "right");
        await vault.StartAsync(Alice, "right");

        var e = await Assert.ThrowsAsync<VaultException>(() => vault.StartAsync(Alice, "right"));

        Assert.Equal(VaultError.ResourceExhausted, e.Error);
        Assert.Contains("recoveries in flight", e.Message, StringComparison.Ordinal);
        Assert.Equal(8, (await vault.StatusAsync(Alice)).GuessesRemaining);
        var other = new UserIdentity("https://issuer.example", "bob");
        await vault.RegisterAsync(other, "pw", _backupKey);
        Assert.Equal(9, (await vault.StartAsync(other, "pw")).Start.GuessesRemaining);
    }

    [Theory]
    [InlineData("evil\u202Egnp.exe")]
    [InlineData("zero\u200Bwidth")]
    [InlineData("quote\" AUDIT: Replaced")]
    [InlineData("back\\slash")]
    [InlineData("ünïcode")]
    public void UserIdentity_InLogsAndMessages_IsEscapedOrPseudonymous(string subject)
    {
        var user = new UserIdentity("tenant", subject);

        var escaped = user.ForLog(UserLogForm.Escaped);
        var pseudonym = user.ForLog(UserLogForm.Hashed);

        Assert.All(escaped, c => Assert.InRange(c, ' ', '~'));
        Assert.DoesNotContain('"', escaped.Replace("\\u0022", "", StringComparison.Ordinal));
        Assert.Matches("^u:[0-9a-f]{16}$", pseudonym);
        Assert.Equal(pseudonym, new UserIdentity("tenant", subject).Pseudonym());
        Assert.NotEqual(pseudonym, new UserIdentity("tenant2", subject).Pseudonym());
        Assert.Equal(escaped, user.ToString());
    }

    public void Dispose() => _vault.Dispose();

    /// <summary>
    /// Loses the answer to the first charge (it commits, the member hears Unavailable), running
    /// <paramref name="meanwhile"/> before the member can find out what it did.
    /// </summary>
    /// <returns>Whether the answer was lost yet.</returns>
    private Func<bool> LoseTheFirstChargesAnswer(Action meanwhile)
    {
        var lost = false;
        _vault.Log.LoseAnswer = command =>
        {
            if (command is not ChargeGuessCommand || lost)
            {
                return false;
            }

            lost = true;
            meanwhile();
            return true;
        };
        return () => lost;
    }
}
