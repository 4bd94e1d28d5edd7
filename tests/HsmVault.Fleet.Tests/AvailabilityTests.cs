using System.Text;
using Grpc.Core;
using HsmVault.Client;
using HsmVault.Fleet.Tests.Support;

namespace HsmVault.Fleet.Tests;

/// <summary>A fleet of three serves with one member down and refuses everything, charging nothing, with two down.</summary>
public sealed class AvailabilityTests
{
    private static readonly byte[] Password = Encoding.UTF8.GetBytes("availability password");
    private static readonly byte[] WrongPassword = Encoding.UTF8.GetBytes("not the password");
    private static readonly byte[] BackupKey = Encoding.UTF8.GetBytes("0123456789abcdef0123456789abcdef");

    [Fact]
    public async Task Fleet_WithOneMemberDown_Serves_WithTwoDown_RefusesAndChargesNothing()
    {
        await using var fleet = await FleetFixture.CreateAsync();
        var leader = await fleet.SettledAsync();
        await leader.StopAsync();
        await fleet.SettledAsync();
        var alive = fleet.Running;
        Assert.Equal(2, alive.Count);

        // One down: each survivor registers a user, the other recovers it, and a wrong guess counts.
        for (var i = 0; i < alive.Count; i++)
        {
            var user = $"user-{i}";
            var registered = await fleet.RegisterAsync(alive[i], user, Password, BackupKey, guessLimit: 5);
            Assert.Equal(5, registered.GuessLimit);
            var recovered = await fleet.Client(alive[1 - i], user).RecoverAsync(Password);
            Assert.Equal(RecoveryStatus.Recovered, recovered.Status);
            Assert.Equal(BackupKey, recovered.BackupKey);
            var wrong = await fleet.Client(alive[i], user).RecoverAsync(WrongPassword);
            Assert.Equal((RecoveryStatus.WrongPassword, 4), (wrong.Status, wrong.GuessesRemaining));
        }

        // Two down: the last member refuses every write and every status, with Unavailable.
        var survivor = alive[0];
        await alive[1].StopAsync();
        await AssertUnavailableAsync(() => fleet.Client(survivor, "user-0").RegisterAsync(Password, BackupKey, guessLimit: 5, replaceExisting: true));
        await AssertUnavailableAsync(() => fleet.Client(survivor, "carol").RegisterAsync(Password, BackupKey));
        await AssertUnavailableAsync(() => fleet.Client(survivor, "user-0").RecoverAsync(WrongPassword));
        await AssertUnavailableAsync(() => fleet.Client(survivor, "user-1").RecoverAsync(Password));
        await AssertUnavailableAsync(() => fleet.StatusAsync(survivor, "user-0"));

        // One back: nothing the refused calls asked for happened.
        await alive[1].StartAsync();
        await fleet.SettledAsync();
        var status = await fleet.ConvergedStatusAsync("user-0", "user-1", "carol");
        Assert.Equal((true, 5u, 4u), (status["user-0"].Registered, status["user-0"].GuessLimit, status["user-0"].GuessesRemaining));
        Assert.Equal((true, 5u, 4u), (status["user-1"].Registered, status["user-1"].GuessLimit, status["user-1"].GuessesRemaining));
        Assert.False(status["carol"].Registered);
        fleet.AssertNoUnexpectedErrors();
    }

    private static async Task AssertUnavailableAsync(Func<Task> call)
    {
        var refused = await Assert.ThrowsAsync<RpcException>(call);
        Assert.True(refused.StatusCode == StatusCode.Unavailable, refused.ToString());
    }
}
