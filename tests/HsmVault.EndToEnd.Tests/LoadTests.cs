using Grpc.Core;
using Grpc.Health.V1;
using HsmVault.Client;

namespace HsmVault.EndToEnd.Tests;

/// <summary>
/// Many clients at once against one daemon whose token allows two concurrent operations
/// (SoftHSM2 crashes with private-key work from four or more threads): the daemon stays up
/// and every answer is exactly right.
/// </summary>
public sealed class LoadTests : DaemonTest
{
    private const int Owners = 8;
    private const int UnknownUsers = 2;
    private const int RecoveriesPerClient = 24;
    private const int GuessLimit = 5;

    [Fact]
    public async Task ConcurrentRecoveries_WithTokenCapOfTwo_AreAllAnsweredCorrectly_AndTheDaemonStaysHealthy()
    {
        Assert.Equal("2", Daemon.Settings["HsmVault:Token:MaxConcurrentOperations"]);
        var seed = Environment.TickCount;
        var users = new List<(string Name, byte[] Password, byte[] Key)>();
        for (var i = 0; i < Owners; i++)
        {
            var user = ($"load-{i}", Setup.NewPassword(), Setup.NewBackupKey());
            await Daemon.CreateClient(user.Item1).RegisterAsync(user.Item2, user.Item3, GuessLimit);
            users.Add(user);
        }

        // Each registered user is driven by one client alone, so its count is known at every step.
        var owners = users.Select((user, i) => Task.Run(() => DriveOwnerAsync(user.Name, user.Password, user.Key, new Random(seed + i))));
        var strangers = Enumerable.Range(0, UnknownUsers).Select(i => Task.Run(() => DriveUnknownUserAsync($"stranger-{i}")));
        var finalCounts = await Task.WhenAll(owners);
        await Task.WhenAll(strangers);

        var health = await new Health.HealthClient(Daemon.CreateChannel()).CheckAsync(new HealthCheckRequest());
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, health.Status);
        for (var i = 0; i < Owners; i++)
        {
            var status = await Daemon.CreateClient(users[i].Name).GetStatusAsync();
            Assert.True(status.Registered, $"{users[i].Name} (seed {seed})");
            Assert.Equal((uint)finalCounts[i], status.GuessesRemaining);
        }
    }

    private async Task<int> DriveOwnerAsync(string user, byte[] password, byte[] key, Random random)
    {
        var client = Daemon.CreateClient(user);
        var wrong = Setup.NewPassword();
        var remaining = GuessLimit;
        for (var i = 0; i < RecoveriesPerClient; i++)
        {
            // Wrong about half the time, but never the last allowed guess.
            var guessWrong = remaining > 1 && random.Next(2) == 0;
            var result = await client.RecoverAsync(guessWrong ? wrong : password);
            if (guessWrong)
            {
                remaining--;
                Assert.Equal(RecoveryStatus.WrongPassword, result.Status);
                Assert.Null(result.BackupKey);
            }
            else
            {
                remaining = GuessLimit;
                Assert.Equal(RecoveryStatus.Recovered, result.Status);
                Assert.Equal(key, result.BackupKey);
            }

            Assert.Equal(remaining, result.GuessesRemaining);
            if (i % 6 == 5)
            {
                Assert.Equal((uint)remaining, (await client.GetStatusAsync()).GuessesRemaining);
            }
        }

        return remaining;
    }

    private async Task DriveUnknownUserAsync(string user)
    {
        var client = Daemon.CreateClient(user);
        for (var i = 0; i < RecoveriesPerClient; i++)
        {
            // Refused without holding anything: a user with no record has nothing to recover.
            var refused = await Assert.ThrowsAsync<RpcException>(() => client.RecoverAsync(Setup.NewPassword()));
            Assert.Equal(StatusCode.NotFound, refused.StatusCode);
        }

        Assert.False((await client.GetStatusAsync()).Registered);
    }
}
