using System.Text;
using Grpc.Core;
using HsmVault.Client;
using HsmVault.Containers.Tests.Support;

namespace HsmVault.Containers.Tests;

/// <summary>
/// A fleet of three hsmvaultd containers from the image, on a Docker network of its own, under
/// the faults containers make real: a SIGKILL, a frozen process, a cut network link, a restart
/// from the volumes, a data volume rolled back to an old copy. The guess limit holds in each.
/// </summary>
[Collection(ContainersGroup.Name)]
public sealed class FleetTests(DockerEngine engine)
{
    private static readonly byte[] Password = Encoding.UTF8.GetBytes("correct horse battery staple");
    private static readonly byte[] WrongPassword = Encoding.UTF8.GetBytes("Tr0ub4dor&3");

    [Fact]
    public async Task Fleet_RegistersAndRecoversThroughEveryMember_ThenDestroysAtTheLimit()
    {
        await using var fleet = await ContainerFleet.StartAsync(engine);
        var backupKey = BackupKeys.NewKey();
        using (var timeout = new CancellationTokenSource(ContainerFleet.CallTimeout))
        {
            await fleet.Client(fleet[0], "alice").RegisterAsync(Password, backupKey, guessLimit: 4, cancellationToken: timeout.Token);
        }

        foreach (var member in fleet.Members)
        {
            using var timeout = new CancellationTokenSource(ContainerFleet.CallTimeout);
            var recovered = await fleet.Client(member, "alice").RecoverAsync(Password, timeout.Token);
            Assert.Equal(RecoveryStatus.Recovered, recovered.Status);
            Assert.Equal(backupKey, recovered.BackupKey);
        }

        // A success resets the count: all four guesses are left.
        Assert.Equal(4u, (await fleet.ConvergedStatusAsync("alice")).GuessesRemaining);
        var tally = await fleet.GuessUntilDestroyedAsync("alice", WrongPassword);
        await fleet.AssertDestroyedAfterAsync(tally, remainingBefore: 4, "alice", Password);
        await fleet.AssertNoErrorLogsAsync();
    }

    [Fact]
    public async Task KillLeader_BetweenStartAndFinishRecovery_ChargedGuessStays()
    {
        await using var fleet = await ContainerFleet.StartAsync(engine);
        var leader = await fleet.SettledAsync();
        await fleet.RegisterAsync(leader, "bob", Password, guessLimit: 4);

        // The right password, but the leader is SIGKILLed once StartRecovery has charged the
        // guess and before FinishRecovery could reset the count: the charge must stand.
        var client = fleet.Client(leader, "bob", new BeforeFinishRecovery(leader.KillAsync));
        using (var timeout = new CancellationTokenSource(ContainerFleet.CallTimeout))
        {
            await Assert.ThrowsAsync<RpcException>(() => client.RecoverAsync(Password, timeout.Token));
        }

        Assert.Equal(MemberState.Down, leader.State);
        var successor = await fleet.SettledAsync();
        Assert.NotSame(leader, successor);
        Assert.Equal(3u, (await fleet.ConvergedStatusAsync("bob")).GuessesRemaining);

        var tally = await fleet.GuessUntilDestroyedAsync("bob", WrongPassword);
        await fleet.AssertDestroyedAfterAsync(tally, remainingBefore: 3, "bob", Password);

        // The killed member comes back from its volumes and learns of the destruction.
        await leader.StartAsync();
        await fleet.SettledAsync();
        Assert.True((await fleet.ConvergedStatusAsync("bob")).Destroyed);
        await fleet.AssertNoErrorLogsAsync();
    }

    [Fact]
    public async Task PausedLeader_HangsWhileTheOthersServe_ThenRejoinsWithoutRefund()
    {
        await using var fleet = await ContainerFleet.StartAsync(engine);
        var leader = await fleet.SettledAsync();
        await fleet.RegisterAsync(leader, "carol", Password, guessLimit: 5);
        await fleet.ConvergedStatusAsync("carol");

        await leader.PauseAsync();
        // Frozen, not dead: its port still accepts, and a call to it only runs out of time.
        var hung = await Assert.ThrowsAsync<RpcException>(() => fleet.StatusAsync(leader, "carol", TimeSpan.FromSeconds(3)));
        Assert.Equal(StatusCode.DeadlineExceeded, hung.StatusCode);

        var successor = await fleet.SettledAsync();
        Assert.NotSame(leader, successor);
        var whilePaused = await WrongGuessesAsync(fleet, "carol", 2);
        Assert.Equal([4, 3], whilePaused);

        await leader.UnpauseAsync();
        await fleet.SettledAsync();
        Assert.Equal(3u, (await fleet.ConvergedStatusAsync("carol")).GuessesRemaining);
        var tally = await fleet.GuessUntilDestroyedAsync("carol", WrongPassword);
        await fleet.AssertDestroyedAfterAsync(tally, remainingBefore: 3, "carol", Password);
        // The call made to the frozen member was reset by its client at the deadline; on waking, the member's gRPC
        // library reads that request's body, finds the reset, and logs it as an error before any HsmVault code runs.
        await fleet.AssertNoErrorLogsAsync("The client reset the request stream.");
    }

    [Fact]
    public async Task DisconnectedLeader_MajorityServes_ReconnectedMemberCatchesUp()
    {
        await using var fleet = await ContainerFleet.StartAsync(engine);
        var leader = await fleet.SettledAsync();
        await fleet.RegisterAsync(leader, "dave", Password, guessLimit: 5);
        await fleet.ConvergedStatusAsync("dave");

        await leader.DisconnectAsync();
        var successor = await fleet.SettledAsync();
        Assert.NotSame(leader, successor);
        Assert.Equal([4, 3], await WrongGuessesAsync(fleet, "dave", 2));

        await leader.ReconnectAsync();
        await fleet.SettledAsync();
        Assert.Equal(3u, (await fleet.ConvergedStatusAsync("dave")).GuessesRemaining);
        var tally = await fleet.GuessUntilDestroyedAsync("dave", WrongPassword);
        await fleet.AssertDestroyedAfterAsync(tally, remainingBefore: 3, "dave", Password);
        await fleet.AssertNoErrorLogsAsync();
    }

    [Fact]
    public async Task EveryMemberKilledAndRestartedFromItsVolumes_RefundsNoGuess()
    {
        await using var fleet = await ContainerFleet.StartAsync(engine);
        await fleet.RegisterAsync(fleet[0], "erin", Password, guessLimit: 5);
        await fleet.ConvergedStatusAsync("erin");
        Assert.Equal([4, 3], await WrongGuessesAsync(fleet, "erin", 2));

        await Task.WhenAll(fleet.Members.Select(m => m.KillAsync()));
        await Task.WhenAll(fleet.Members.Select(m => m.StartAsync()));
        await fleet.SettledAsync();

        Assert.Equal(3u, (await fleet.ConvergedStatusAsync("erin")).GuessesRemaining);
        var tally = await fleet.GuessUntilDestroyedAsync("erin", WrongPassword);
        await fleet.AssertDestroyedAfterAsync(tally, remainingBefore: 3, "erin", Password);
        await fleet.AssertNoErrorLogsAsync();
    }

    [Fact]
    public async Task DataVolumeRolledBackToAnOldCopy_RefundsNoGuess()
    {
        await using var fleet = await ContainerFleet.StartAsync(engine);
        var leader = await fleet.SettledAsync();
        await fleet.RegisterAsync(leader, "frank", Password, guessLimit: 5);
        await fleet.ConvergedStatusAsync("frank");

        // An old copy of a follower's data volume, taken while it was stopped (as a disk snapshot would be).
        var rolledBack = fleet.Members.First(m => m != leader);
        var copy = await fleet.NewVolumeAsync("old-data");
        await rolledBack.StopAsync();
        await fleet.CopyVolumeAsync(rolledBack.DataVolume, copy);
        await rolledBack.StartAsync();
        await fleet.SettledAsync();

        Assert.Equal([4, 3, 2], await WrongGuessesAsync(fleet, "frank", 3));
        Assert.Equal(2u, (await fleet.ConvergedStatusAsync("frank")).GuessesRemaining);

        // Its data goes back to when all five guesses were left; its token folder (the
        // high-water mark) stays. The leader is killed meanwhile, so that the rolled-back member
        // comes back to no leader, and the fleet that must elect one and serve is that member
        // and the one other: its vote and its log count.
        await rolledBack.StopAsync();
        await fleet.CopyVolumeAsync(copy, rolledBack.DataVolume);
        await leader.KillAsync();
        await rolledBack.StartAsync();
        // It must have noticed: its data is behind the mark its token holds.
        await Poll.UntilAsync(async () => (await rolledBack.LogsAsync()).Contains("behind the high-water mark", StringComparison.Ordinal) ? "" : null,
            "the rolled-back member to find its data behind its high-water mark");
        await fleet.SettledAsync();

        Assert.Equal(2u, (await fleet.ConvergedStatusAsync("frank")).GuessesRemaining);
        var tally = await fleet.GuessUntilDestroyedAsync("frank", WrongPassword);
        await fleet.AssertDestroyedAfterAsync(tally, remainingBefore: 2, "frank", Password);
        await fleet.AssertNoErrorLogsAsync();
    }

    /// <summary><paramref name="count"/> wrong guesses round-robin over the reachable members, each answered; the counts they report.</summary>
    /// <summary>
    /// <paramref name="count"/> wrong guesses round-robin over the reachable members; returns the
    /// guesses left after each. On a loaded machine an election can start while a guess is in
    /// flight (a leader whose heartbeats were late): such a guess gets no answer and may or may
    /// not have been charged. The fleet is let settle and asked: a charged guess counts with
    /// the count it left, one not charged is made again. What the callers assert — each guess
    /// charged once, none refunded — is unchanged.
    /// </summary>
    private static async Task<List<int>> WrongGuessesAsync(ContainerFleet fleet, string user, int count)
    {
        var remaining = new List<int>();
        for (var i = 0; remaining.Count < count; i++)
        {
            var before = (int)(await fleet.ConvergedStatusAsync(user)).GuessesRemaining;
            var reachable = fleet.Reachable;
            using var timeout = new CancellationTokenSource(ContainerFleet.CallTimeout);
            try
            {
                var result = await fleet.Client(reachable[i % reachable.Count], user).RecoverAsync(WrongPassword, timeout.Token);
                Assert.Equal(RecoveryStatus.WrongPassword, result.Status);
                remaining.Add(result.GuessesRemaining);
            }
            catch (Exception e) when (e is RpcException { StatusCode: StatusCode.Unavailable or StatusCode.DeadlineExceeded or StatusCode.Cancelled } or OperationCanceledException)
            {
                await fleet.SettledAsync();
                var after = (int)(await fleet.ConvergedStatusAsync(user)).GuessesRemaining;
                Assert.InRange(after, before - 1, before);
                if (after == before - 1)
                {
                    remaining.Add(after);
                }
            }
        }

        return remaining;
    }
}
