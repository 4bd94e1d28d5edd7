using System.Text;
using HsmVault.Client;
using HsmVault.Fleet.Tests.Support;
using HsmVault.Testing;

namespace HsmVault.Tokens.Tests;

/// <summary>
/// Real hsmvaultd members (Kestrel on 127.0.0.1, Raft, SQLite) whose tokens are NSS softoken, alone
/// or in a fleet with SoftHSM2 members: the ceremony copies the fleet keys across implementations,
/// and the fleet serves.
/// </summary>
public sealed class NssDaemonTests
{
    private static readonly byte[] Password = Encoding.UTF8.GetBytes("correct horse battery staple");
    private static readonly byte[] WrongPassword = Encoding.UTF8.GetBytes("Tr0ub4dor&3");

    [Fact]
    public async Task SingleNssMember_RegisterRecoverThenLockout_DestroysAfterTheLimit()
    {
        await using var fleet = await FleetFixture.CreateAsync(new FleetSettings { Members = 1, CreateToken = _ => NssEnvironment.Shared.CreateToken() });
        var member = fleet[0];
        Assert.Equal(NssEnvironment.TokenLabel, member.Token.TokenLabel);
        var backupKey = Encoding.UTF8.GetBytes("backup key over NSS");
        await fleet.RegisterAsync(member, "alice", Password, backupKey, guessLimit: 3);

        var right = await fleet.Client(member, "alice").RecoverAsync(Password);
        Assert.Equal(RecoveryStatus.Recovered, right.Status);
        Assert.Equal(backupKey, right.BackupKey);

        var answers = new List<RecoveryResult>();
        for (var i = 0; i < 3; i++)
        {
            answers.Add(await fleet.Client(member, "alice").RecoverAsync(WrongPassword));
        }

        Assert.Equal([RecoveryStatus.WrongPassword, RecoveryStatus.WrongPassword, RecoveryStatus.RecordDestroyed], answers.Select(a => a.Status));
        Assert.Equal([2, 1], answers.Take(2).Select(a => a.GuessesRemaining));
        var afterwards = await fleet.Client(member, "alice").RecoverAsync(Password);
        Assert.Equal(RecoveryStatus.RecordDestroyed, afterwards.Status);
        Assert.Null(afterwards.BackupKey);
        fleet.AssertNoUnexpectedErrors();
    }

    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    public async Task MixedFleet_OneNssMemberTwoSoftHsmMembers_RunTheCeremonyAndServe(int nssMember)
    {
        // The fleet keys are generated in member 1's token and copied to the two others: with
        // nssMember 0 from NSS to SoftHSM2, with 2 from SoftHSM2 to both (see MixedCeremonyTests).
        await using var fleet = await FleetFixture.CreateAsync(new FleetSettings
        {
            Members = 3,
            CreateToken = i => i == nssMember ? NssEnvironment.Shared.CreateToken() : SoftHsmEnvironment.Shared.CreateToken(),
        });
        Assert.Equal(NssEnvironment.TokenLabel, fleet[nssMember].Token.TokenLabel);
        var backupKey = Encoding.UTF8.GetBytes("backup key of a mixed fleet");

        // Registered through one implementation, recovered through every member.
        await fleet.RegisterAsync(fleet[nssMember], "alice", Password, backupKey, guessLimit: 10);
        foreach (var member in fleet.Members)
        {
            var recovered = await fleet.Client(member, "alice").RecoverAsync(Password);
            Assert.Equal(RecoveryStatus.Recovered, recovered.Status);
            Assert.Equal(backupKey, recovered.BackupKey);
        }

        // Wrong guesses spread over both implementations count as one budget.
        var answers = new List<RecoveryResult>();
        for (var guess = 0; guess < 10; guess++)
        {
            answers.Add(await fleet.Client(fleet[guess % 3], "alice").RecoverAsync(WrongPassword));
        }

        Assert.Equal(Enumerable.Range(1, 9).Reverse(), answers.Take(9).Select(a => a.GuessesRemaining));
        Assert.Equal(RecoveryStatus.RecordDestroyed, answers[9].Status);
        var status = (await fleet.ConvergedStatusAsync("alice"))["alice"];
        Assert.True(status.Destroyed);
        fleet.AssertNoUnexpectedErrors();
    }
}
