using System.Text;
using HsmVault.Fleet.Tests.Support;
using HsmVault.Testing.Linearizability;

namespace HsmVault.Fleet.Tests;

/// <summary>Members that lost their disk, or went back in time, catch up from the others and never grant an extra guess.</summary>
public sealed class CatchUpTests
{
    private static readonly byte[] Password = Encoding.UTF8.GetBytes("catch-up password");
    private static readonly byte[] WrongPassword = Encoding.UTF8.GetBytes("wrong catch-up password");

    // Event ids of RaftHostLog.
    private const int BehindHighWaterMarkEvent = 3001;
    private const int SnapshotInstalledEvent = 3006;
    private const int CaughtUpEvent = 3010;

    [Fact]
    public async Task WipedFollower_CatchesUpBySnapshot_AndServesTheSameStatus()
    {
        await using var fleet = await FleetFixture.CreateAsync(new FleetSettings { SnapshotEveryEntries = 20 });
        var history = new HistoryRecorder<VaultInput, VaultOutput>();
        var client = new RecordingClient(fleet, history, clientId: 1);
        var leader = await fleet.SettledAsync();
        var users = Enumerable.Range(0, 6).Select(i => $"user-{i}").ToArray();
        for (var i = 0; i < users.Length; i++)
        {
            await client.EnsureRegisteredAsync(fleet[i % 3], users[i], Password, limit: 10);
        }

        // More than SnapshotEveryEntries writes: every member snapshots and compacts its log.
        for (var i = 0; i < 6; i++)
        {
            Assert.Equal(new VaultOutput.WrongPassword(9 - i), await client.RecoverAsync(fleet[i % 3], "user-1", WrongPassword));
            Assert.IsType<VaultOutput.Success>(await client.RecoverAsync(fleet[(i + 1) % 3], "user-2", Password));
        }

        await Poll.UntilAsync(() => leader.Raft.Status!.SnapshotIndex > 0, "the leader to take a snapshot");

        var wiped = fleet.Others(leader)[0];
        var other = fleet.Others(leader)[1];
        await wiped.StopAsync();
        Directory.Delete(wiped.DataDirectory, recursive: true);
        Assert.Equal(new VaultOutput.WrongPassword(3), await client.RecoverAsync(leader, "user-1", WrongPassword));
        Assert.Equal(new VaultOutput.WrongPassword(2), await client.RecoverAsync(other, "user-1", WrongPassword));

        // Same token, empty disk: the member knows from its token's high-water mark that it lost
        // state, and catches up from the leader, whose log no longer starts at 1: by snapshot.
        await wiped.StartAsync();
        var status = await fleet.ConvergedStatusAsync(users);
        Assert.True(wiped.Logs.Contains(BehindHighWaterMarkEvent), wiped.Logs.Text);
        Assert.True(wiped.Logs.Contains(SnapshotInstalledEvent), wiped.Logs.Text);
        await Poll.UntilAsync(() => wiped.Logs.Contains(CaughtUpEvent), "the wiped member to catch up past its high-water mark");
        Assert.Equal(2u, status["user-1"].GuessesRemaining);
        Assert.Equal(10u, status["user-2"].GuessesRemaining);

        // Needed for the majority now: with the other follower down, writes go through the wiped member.
        await other.StopAsync();
        Assert.Equal(new VaultOutput.WrongPassword(1), await client.RecoverAsync(wiped, "user-1", WrongPassword));
        Assert.Equal(new VaultOutput.Status(true, 1, false), await client.StatusAsync(wiped, "user-1"));
        Assert.Equal(new VaultOutput.Status(true, 1, false), await client.StatusAsync(leader, "user-1"));

        var report = VaultHistory.Verify(history.History(), TimeSpan.FromSeconds(60));
        Assert.True(report.Passed, report.ToString());
        Assert.Empty(client.Unexpected);
        fleet.AssertNoUnexpectedErrors();
    }

    [Fact]
    public async Task RolledBackMember_NeededForTheMajority_CannotGrantAnExtraGuess()
    {
        await using var fleet = await FleetFixture.CreateAsync();
        var history = new HistoryRecorder<VaultInput, VaultOutput>();
        var client = new RecordingClient(fleet, history, clientId: 1);
        var leader = await fleet.SettledAsync();
        var rolledBack = fleet.Others(leader)[0];
        var healthy = fleet.Others(leader)[1];
        await client.EnsureRegisteredAsync(leader, "carol", Password, limit: 10);

        // The old copy: everything up to the registration, nothing after.
        var backup = Path.Combine(fleet.WorkDirectory, "rollback-copy");
        await rolledBack.StopAsync();
        CopyDirectory(rolledBack.DataDirectory, backup);
        await rolledBack.StartAsync();
        await fleet.SettledAsync();

        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(new VaultOutput.WrongPassword(9 - i), await client.RecoverAsync(fleet[i % 3], "carol", WrongPassword));
        }

        // Put the old disk back (the token, with its high-water mark, is elsewhere), and take down
        // the leader, so that every commit now needs the rolled-back member.
        await rolledBack.StopAsync();
        Directory.Delete(rolledBack.DataDirectory, recursive: true);
        CopyDirectory(backup, rolledBack.DataDirectory);
        await rolledBack.StartAsync();
        await leader.StopAsync();

        var charged = new List<int>();
        var unknown = 0;
        var members = new[] { rolledBack, healthy };
        for (var attempt = 0; attempt < 30 && charged.Count < 3; attempt++)
        {
            var (started, recovery) = await client.StartRecoveryAsync(members[attempt % 2], "carol", WrongPassword);
            if (started is VaultOutput.Charged c)
            {
                charged.Add(c.Remaining);
                Assert.Equal(new VaultOutput.WrongPassword(c.Remaining), await client.FinishRecoveryAsync(recovery!));
            }
            else
            {
                Assert.Null(started);
                unknown++;
                await fleet.LeaderAsync();
            }
        }

        Assert.True(rolledBack.Logs.Contains(BehindHighWaterMarkEvent), rolledBack.Logs.Text);

        // The count went on from the majority's 5 guesses, not from the copy's 0.
        Assert.Equal(3, charged.Count);
        Assert.True(charged[0] <= 4, $"after 5 guesses the fleet answered {charged[0]} remaining: {string.Join(", ", charged)}");
        Assert.Equal(charged.OrderDescending().Distinct(), charged);

        await leader.StartAsync();
        await fleet.SettledAsync();
        var status = (await fleet.ConvergedStatusAsync("carol"))["carol"];
        Assert.InRange((int)status.GuessesRemaining, charged[^1] - unknown, charged[^1]);
        var report = VaultHistory.Verify(history.History(), TimeSpan.FromSeconds(60));
        Assert.True(report.Passed, report.ToString());
        Assert.True(GuessBudget.Check(history.History()).Ok);
        Assert.Empty(client.Unexpected);
        fleet.AssertNoUnexpectedErrors();
    }

    private static void CopyDirectory(string source, string target)
    {
        Directory.CreateDirectory(target);
        foreach (var file in Directory.EnumerateFiles(source, "*", SearchOption.AllDirectories))
        {
            var destination = Path.Combine(target, Path.GetRelativePath(source, file));
            Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
            File.Copy(file, destination, overwrite: true);
        }
    }
}
