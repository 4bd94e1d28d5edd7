using System.Text;
using HsmVault.Client;
using HsmVault.Fleet.Tests.Support;
using HsmVault.Testing.Linearizability;

namespace HsmVault.Fleet.Tests;

/// <summary>The guess limit holds across the fleet: guesses sent to different members add up, a crash included.</summary>
public sealed class GuessLimitTests
{
    private static readonly byte[] Password = Encoding.UTF8.GetBytes("correct horse battery staple");
    private static readonly byte[] WrongPassword = Encoding.UTF8.GetBytes("Tr0ub4dor&3");

    [Fact]
    public async Task Recover_TenWrongPasswordsRoundRobin_DestroysRecord()
    {
        await using var fleet = await FleetFixture.CreateAsync();
        var register = await fleet.RegisterAsync(fleet[0], "alice", Password, Encoding.UTF8.GetBytes("backup key"), guessLimit: 10);
        Assert.Equal(10, register.GuessLimit);

        var answers = new List<RecoveryResult>();
        for (var guess = 0; guess < 10; guess++)
        {
            var member = fleet[guess % fleet.Members.Count];
            answers.Add(await fleet.Client(member, "alice").RecoverAsync(WrongPassword));
        }

        // Nine wrong answers counting down through every member, then the tenth destroys the record.
        Assert.All(answers.Take(9), a => Assert.Equal(RecoveryStatus.WrongPassword, a.Status));
        Assert.Equal(Enumerable.Range(1, 9).Reverse(), answers.Take(9).Select(a => a.GuessesRemaining));
        Assert.Equal(RecoveryStatus.RecordDestroyed, answers[9].Status);

        var eleventh = await fleet.Client(fleet[1], "alice").RecoverAsync(Password);
        Assert.Equal(RecoveryStatus.RecordDestroyed, eleventh.Status);
        Assert.Null(eleventh.BackupKey);

        var status = (await fleet.ConvergedStatusAsync("alice"))["alice"];
        Assert.True(status.Destroyed);
        Assert.False(status.Registered);
        fleet.AssertNoUnexpectedErrors();
    }

    [Fact]
    public async Task Recover_WrongPasswordsWithLeaderKilledMidway_StillDestroysAfterTen()
    {
        await using var fleet = await FleetFixture.CreateAsync(new FleetSettings { Hosting = MemberHosting.ChildProcess });
        var history = new HistoryRecorder<VaultInput, VaultOutput>();
        var client = new RecordingClient(fleet, history, clientId: 1);
        await client.EnsureRegisteredAsync(fleet[0], "bob", Password, limit: 10);

        var charged = new List<int>();
        var unknown = 0;
        var destroyed = false;
        FleetMember? killed = null;
        for (var attempt = 0; attempt < 40 && !destroyed; attempt++)
        {
            if (charged.Count == 4 && killed is null)
            {
                killed = await fleet.LeaderAsync();
                await killed.KillAsync();
            }

            var member = fleet[attempt % fleet.Members.Count];
            var (started, recovery) = await client.StartRecoveryAsync(member, "bob", WrongPassword);
            switch (started)
            {
                case VaultOutput.Charged c:
                    charged.Add(c.Remaining);
                    Assert.False(recovery!.PasswordAccepted);
                    var finished = await client.FinishRecoveryAsync(recovery);
                    destroyed = finished is VaultOutput.Destroyed;
                    break;
                case VaultOutput.Destroyed:
                    destroyed = true;
                    break;
                case null:
                    // The killed member, or a follower that still forwards to it: wait for the new leader.
                    unknown++;
                    await fleet.LeaderAsync();
                    break;
            }
        }

        Assert.NotNull(killed);
        Assert.True(destroyed, $"the record survived 40 attempts; charged: {string.Join(", ", charged)}\n{fleet.AllLogs()}");
        Assert.True(unknown > 0, "no attempt reached the killed member");

        // Every answered guess counted once, none twice: the remaining counts are distinct, at most
        // ten were answered, and an unanswered attempt may explain a skipped count but no extra one.
        Assert.True(charged.Count <= 10, $"{charged.Count} guesses answered: {string.Join(", ", charged)}");
        Assert.Equal(charged.Count, charged.Distinct().Count());
        Assert.Equal(charged.OrderDescending(), charged);
        Assert.True(charged.Count + unknown >= 10, $"destroyed after only {charged.Count} charged and {unknown} unanswered attempts");
        Assert.All(charged, remaining => Assert.InRange(remaining, 0, 9));

        var report = VaultHistory.Verify(history.History(), Poll.LinearizabilityBudget);
        Assert.True(report.Passed, report.ToString());
        Assert.Empty(client.Unexpected);

        var status = (await fleet.ConvergedStatusAsync("bob"))["bob"];
        Assert.True(status.Destroyed);
    }
}
