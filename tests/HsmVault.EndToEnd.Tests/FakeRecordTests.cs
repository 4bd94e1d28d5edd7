using System.Security.Cryptography;
using Google.Protobuf;
using HsmVault.Client;
using HsmVault.EndToEnd.Tests.Support;
using HsmVault.Protocol.V1;

namespace HsmVault.EndToEnd.Tests;

/// <summary>RFC 9807 section 10.9: StartRecovery does not reveal whether a user is registered.</summary>
public sealed class FakeRecordTests : DaemonTest
{
    [Fact]
    public async Task StartRecovery_ForUnknownUser_AnswersLikeAFreshRecord_AndFinishSaysWrongPassword()
    {
        var raw = Daemon.CreateRawClient();
        var headers = Setup.Headers("nobody");

        var (started, finish) = await Messages.StartRecoveryAsync(raw, headers, Setup.NewPassword());
        var finished = await raw.FinishRecoveryAsync(
            new FinishRecoveryRequest { SessionId = started.SessionId, Ke3 = ByteString.CopyFrom(RandomNumberGenerator.GetBytes(64)) }, headers);
        var status = await raw.GetStatusAsync(new GetStatusRequest(), headers);

        Assert.Equal(320, started.Ke2.Length);
        Assert.Equal(16, started.SessionId.Length);
        Assert.Equal(9u, started.GuessesRemaining);
        Assert.Null(finish);
        Assert.Equal(RecoveryOutcome.WrongPassword, finished.Outcome);
        Assert.Equal(9u, finished.GuessesRemaining);
        Assert.True(finished.ReleasedSecret.IsEmpty);
        Assert.False(status.Registered);
        Assert.False(status.Destroyed);
    }

    [Fact]
    public async Task StartRecovery_ForUnknownUser_LooksTheSameAsForARegisteredUserWithAWrongPassword()
    {
        await Daemon.CreateClient("someone").RegisterAsync(Setup.NewPassword(), Setup.NewBackupKey());
        var raw = Daemon.CreateRawClient();
        var guess = Setup.NewPassword();

        var (known, knownFinish) = await Messages.StartRecoveryAsync(raw, Setup.Headers("someone"), guess);
        var (unknown, unknownFinish) = await Messages.StartRecoveryAsync(raw, Setup.Headers("nobody"), guess);

        Assert.Equal(known.Ke2.Length, unknown.Ke2.Length);
        Assert.Equal(known.SessionId.Length, unknown.SessionId.Length);
        Assert.Equal(known.GuessesRemaining, unknown.GuessesRemaining);
        Assert.Null(knownFinish);
        Assert.Null(unknownFinish);
    }

    [Fact]
    public async Task Recover_ForUnknownUser_SaysWrongPasswordEveryTime_AndCreatesNoRecord()
    {
        var client = Daemon.CreateClient("nobody");

        var first = await client.RecoverAsync(Setup.NewPassword());
        var second = await client.RecoverAsync(Setup.NewPassword());
        var status = await client.GetStatusAsync();

        Assert.Equal(RecoveryStatus.WrongPassword, first.Status);
        Assert.Equal(9, first.GuessesRemaining);
        Assert.Equal(RecoveryStatus.WrongPassword, second.Status);
        Assert.Equal(9, second.GuessesRemaining);
        Assert.False(status.Registered);
    }
}
