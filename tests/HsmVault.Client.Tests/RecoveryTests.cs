using Google.Protobuf;
using Grpc.Core;
using HsmVault.Crypto.Opaque;
using HsmVault.Testing.Daemons;
using HsmVault.Testing.Opaque;
using HsmVault.Protocol.V1;

namespace HsmVault.Client.Tests;

/// <summary>Register, recover, wrong passwords, reset, status and delete through the client library, against a real daemon.</summary>
public sealed class RecoveryTests : DaemonTest
{
    [Fact]
    public async Task Recover_WithRightPassword_ReturnsRegisteredKey()
    {
        var client = Daemon.CreateClient("alice");
        var password = Setup.NewPassword();
        var key = Setup.NewBackupKey();

        var registered = await client.RegisterAsync(password, key);
        var recovered = await client.RecoverAsync(password);

        Assert.Equal(10, registered.GuessLimit);
        Assert.False(registered.Replaced);
        Assert.Equal(RecoveryStatus.Recovered, recovered.Status);
        Assert.Equal(key, recovered.BackupKey);
        Assert.Equal(10, recovered.GuessesRemaining);
    }

    [Fact]
    public async Task Recover_WithWrongPassword_ChargesOneGuessEachTime()
    {
        var client = Daemon.CreateClient("alice");
        await client.RegisterAsync(Setup.NewPassword(), Setup.NewBackupKey());
        var wrong = Setup.NewPassword();

        var first = await client.RecoverAsync(wrong);
        var second = await client.RecoverAsync(wrong);
        var status = await client.GetStatusAsync();

        Assert.Equal(RecoveryStatus.WrongPassword, first.Status);
        Assert.Null(first.BackupKey);
        Assert.Equal(9, first.GuessesRemaining);
        Assert.Equal(RecoveryStatus.WrongPassword, second.Status);
        Assert.Equal(8, second.GuessesRemaining);
        Assert.True(status.Registered);
        Assert.Equal(8u, status.GuessesRemaining);
        Assert.Equal(10u, status.GuessLimit);
    }

    [Fact]
    public async Task Recover_AfterTenWrongPasswords_DestroysRecord()
    {
        var client = Daemon.CreateClient("alice");
        var password = Setup.NewPassword();
        await client.RegisterAsync(password, Setup.NewBackupKey());
        var wrong = Setup.NewPassword();

        for (var remaining = 9; remaining >= 1; remaining--)
        {
            var attempt = await client.RecoverAsync(wrong);
            Assert.Equal(RecoveryStatus.WrongPassword, attempt.Status);
            Assert.Equal(remaining, attempt.GuessesRemaining);
        }

        var tenth = await client.RecoverAsync(wrong);
        var eleventhWithRightPassword = await client.RecoverAsync(password);
        var status = await client.GetStatusAsync();

        Assert.Equal(RecoveryStatus.RecordDestroyed, tenth.Status);
        Assert.Equal(RecoveryStatus.RecordDestroyed, eleventhWithRightPassword.Status);
        Assert.Null(eleventhWithRightPassword.BackupKey);
        Assert.False(status.Registered);
        Assert.True(status.Destroyed);
        Assert.Equal(0u, status.GuessesRemaining);
    }

    /// <summary>The refusal <see cref="VaultClient.RecoverAsync"/> turns into <see cref="RecoveryStatus.RecordDestroyed"/>.</summary>
    [Fact]
    public async Task StartRecovery_OnDestroyedRecord_FailsWithRecordDestroyedReason()
    {
        var client = Daemon.CreateClient("alice");
        await client.RegisterAsync(Setup.NewPassword(), Setup.NewBackupKey(), guessLimit: 1);
        Assert.Equal(RecoveryStatus.RecordDestroyed, (await client.RecoverAsync(Setup.NewPassword())).Status);
        var raw = Daemon.CreateRawClient();

        var refused = await Assert.ThrowsAsync<RpcException>(async () =>
            await raw.StartRecoveryAsync(new() { Ke1 = Ke1(Setup.NewPassword()) }, Setup.Headers("alice")));

        Assert.Equal(StatusCode.FailedPrecondition, refused.StatusCode);
        Assert.Equal(RefusalReason.RecordDestroyed, VaultClient.ReasonOf(refused));
    }

    [Fact]
    public async Task Recover_WithCustomGuessLimit_DestroysAfterThatManyWrongPasswords()
    {
        var client = Daemon.CreateClient("alice");
        var registered = await client.RegisterAsync(Setup.NewPassword(), Setup.NewBackupKey(), guessLimit: 3);
        var wrong = Setup.NewPassword();

        var results = new List<RecoveryResult>();
        for (var i = 0; i < 3; i++)
        {
            results.Add(await client.RecoverAsync(wrong));
        }

        Assert.Equal(3, registered.GuessLimit);
        Assert.Equal([RecoveryStatus.WrongPassword, RecoveryStatus.WrongPassword, RecoveryStatus.RecordDestroyed], results.Select(r => r.Status));
        Assert.Equal([2, 1, 0], results.Select(r => r.GuessesRemaining));
    }

    [Fact]
    public async Task Recover_WithRightPasswordAfterWrongOnes_ResetsGuessCount()
    {
        var client = Daemon.CreateClient("alice");
        var password = Setup.NewPassword();
        var key = Setup.NewBackupKey();
        await client.RegisterAsync(password, key);
        var wrong = Setup.NewPassword();
        for (var i = 0; i < 9; i++)
        {
            await client.RecoverAsync(wrong);
        }

        Assert.Equal(1u, (await client.GetStatusAsync()).GuessesRemaining);
        var recovered = await client.RecoverAsync(password);
        var status = await client.GetStatusAsync();
        var wrongAgain = await client.RecoverAsync(wrong);

        Assert.Equal(RecoveryStatus.Recovered, recovered.Status);
        Assert.Equal(key, recovered.BackupKey);
        Assert.Equal(10, recovered.GuessesRemaining);
        Assert.Equal(10u, status.GuessesRemaining);
        Assert.Equal(RecoveryStatus.WrongPassword, wrongAgain.Status);
        Assert.Equal(9, wrongAgain.GuessesRemaining);
    }

    [Fact]
    public async Task GetStatus_ShowsRegistrationGuessLimitAndRemainingGuesses()
    {
        var client = Daemon.CreateClient("alice");

        var before = await client.GetStatusAsync();
        await client.RegisterAsync(Setup.NewPassword(), Setup.NewBackupKey(), guessLimit: 5);
        var after = await client.GetStatusAsync();

        Assert.False(before.Registered);
        Assert.False(before.Destroyed);
        Assert.Equal(0u, before.GuessLimit);
        Assert.True(after.Registered);
        Assert.False(after.Destroyed);
        Assert.Equal(5u, after.GuessLimit);
        Assert.Equal(5u, after.GuessesRemaining);
    }

    [Fact]
    public async Task Delete_RemovesRecord_AndRecoveryThenIsNotFound()
    {
        var client = Daemon.CreateClient("alice");
        var password = Setup.NewPassword();
        await client.RegisterAsync(password, Setup.NewBackupKey());

        await client.DeleteAsync();
        var status = await client.GetStatusAsync();
        var recovery = await Assert.ThrowsAsync<RpcException>(() => client.RecoverAsync(password));
        var secondDelete = await Assert.ThrowsAsync<RpcException>(() => client.DeleteAsync());

        Assert.False(status.Registered);
        Assert.False(status.Destroyed);
        Assert.Equal(StatusCode.NotFound, recovery.StatusCode);
        Assert.Equal(RefusalReason.NotRegistered, VaultClient.ReasonOf(recovery));
        Assert.Equal(StatusCode.NotFound, secondDelete.StatusCode);
    }

    [Fact]
    public async Task Register_AfterDelete_StoresTheNewKey()
    {
        var client = Daemon.CreateClient("alice");
        await client.RegisterAsync(Setup.NewPassword(), Setup.NewBackupKey());
        await client.DeleteAsync();
        var password = Setup.NewPassword();
        var key = Setup.NewBackupKey();

        var registered = await client.RegisterAsync(password, key);
        var recovered = await client.RecoverAsync(password);

        Assert.False(registered.Replaced);
        Assert.Equal(key, recovered.BackupKey);
    }

    [Fact]
    public async Task Register_WithReplaceExisting_ReplacesKeyAndResetsGuesses()
    {
        var client = Daemon.CreateClient("alice");
        var oldPassword = Setup.NewPassword();
        await client.RegisterAsync(oldPassword, Setup.NewBackupKey());
        await client.RecoverAsync(Setup.NewPassword());
        var newPassword = Setup.NewPassword();
        var newKey = Setup.NewBackupKey();

        var replaced = await client.RegisterAsync(newPassword, newKey, guessLimit: 4, replaceExisting: true);
        var status = await client.GetStatusAsync();
        var withOld = await client.RecoverAsync(oldPassword);
        var withNew = await client.RecoverAsync(newPassword);

        Assert.True(replaced.Replaced);
        Assert.Equal(4, replaced.GuessLimit);
        Assert.Equal(4u, status.GuessesRemaining);
        Assert.Equal(RecoveryStatus.WrongPassword, withOld.Status);
        Assert.Equal(RecoveryStatus.Recovered, withNew.Status);
        Assert.Equal(newKey, withNew.BackupKey);
    }

    [Fact]
    public async Task Records_SurviveADaemonRestart()
    {
        var password = Setup.NewPassword();
        var key = Setup.NewBackupKey();
        await Daemon.CreateClient("alice").RegisterAsync(password, key);
        await Daemon.CreateClient("alice").RecoverAsync(Setup.NewPassword());

        await Daemon.RestartAsync();
        var client = Daemon.CreateClient("alice");
        var status = await client.GetStatusAsync();
        var recovered = await client.RecoverAsync(password);

        Assert.Equal(9u, status.GuessesRemaining);
        Assert.Equal(key, recovered.BackupKey);
    }

    private static ByteString Ke1(byte[] password)
    {
        var start = new OpaqueClient(TestOpaqueSettings.Configuration).GenerateKe1(password);
        start.State.Dispose();
        return ByteString.CopyFrom(start.Ke1);
    }
}
