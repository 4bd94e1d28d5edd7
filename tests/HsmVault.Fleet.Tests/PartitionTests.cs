using System.Text;
using Grpc.Core;
using HsmVault.Fleet.Tests.Support;
using HsmVault.Testing.Linearizability;

namespace HsmVault.Fleet.Tests;

/// <summary>A leader cut off from the majority stops serving; the majority carries on; the old leader catches up.</summary>
public sealed class PartitionTests
{
    private static readonly byte[] Password = Encoding.UTF8.GetBytes("partition password");
    private static readonly byte[] WrongPassword = Encoding.UTF8.GetBytes("wrong partition password");

    [Fact]
    public async Task PartitionedLeader_StopsServing_MajorityElectsAndServes_HealedLeaderCatchesUp()
    {
        await using var fleet = await FleetFixture.CreateAsync();
        var history = new HistoryRecorder<VaultInput, VaultOutput>();
        var client = new RecordingClient(fleet, history, clientId: 1);
        var oldLeader = await fleet.SettledAsync();
        await client.EnsureRegisteredAsync(oldLeader, "alice", Password, limit: 10);
        Assert.Equal(new VaultOutput.WrongPassword(9), await client.RecoverAsync(oldLeader, "alice", WrongPassword));

        fleet.Partition(oldLeader);

        // The majority elects a new leader and keeps counting.
        var newLeader = await Poll.UntilAsync(() => Task.FromResult(fleet.CurrentLeader() is { } l && l != oldLeader ? l : null), "a new leader on the majority side");
        var follower = fleet.Others(oldLeader).Single(m => m != newLeader);
        Assert.Equal(new VaultOutput.WrongPassword(8), await client.RecoverAsync(newLeader, "alice", WrongPassword));
        Assert.Equal(new VaultOutput.WrongPassword(7), await client.RecoverAsync(follower, "alice", WrongPassword));
        Assert.Equal(new VaultOutput.Status(true, 7, false), await client.StatusAsync(follower, "alice"));

        // The old leader answers nothing from its stale state (it would say 9): reads and writes are refused.
        Assert.Null(await client.StatusAsync(oldLeader, "alice"));
        Assert.Equal(StatusCode.Unavailable, client.LastError);
        var (started, _) = await client.StartRecoveryAsync(oldLeader, "alice", WrongPassword);
        Assert.Null(started);
        Assert.Equal(StatusCode.Unavailable, client.LastError);
        Assert.Null(await client.RegisterAsync(oldLeader, "bob", Password, limit: 10));
        Assert.Equal(StatusCode.Unavailable, client.LastError);

        // Healed: the old leader follows, catches up and answers what the others answer.
        fleet.Heal();
        var settled = await fleet.SettledAsync();
        var status = await fleet.ConvergedStatusAsync("alice", "bob");
        Assert.True(status["alice"].Registered);
        // The refused StartRecovery was turned down before anything was proposed: it cost nothing.
        Assert.Equal(7u, status["alice"].GuessesRemaining);
        Assert.False(status["bob"].Registered);
        Assert.Equal(settled.View()!.Term, oldLeader.View()!.Term);
        await Poll.UntilAsync(() => oldLeader.Raft.Status!.AppliedIndex >= settled.Raft.Status!.CommitIndex, "the old leader to apply what the leader committed");
        Assert.Equal(new VaultOutput.Status(true, 7, false), await client.StatusAsync(oldLeader, "alice"));

        var report = VaultHistory.Verify(history.History(), TimeSpan.FromSeconds(60));
        Assert.True(report.Passed, report.ToString());
        Assert.Empty(client.Unexpected);
        fleet.AssertNoUnexpectedErrors();
    }

    [Fact]
    public async Task CallAbandonedByItsCaller_WhileTheMemberWaitsForAMajority_IsAStatusNotAnErrorLog()
    {
        await using var fleet = await FleetFixture.CreateAsync();
        var leader = await fleet.SettledAsync();
        var follower = fleet.Others(leader)[0];
        fleet.Partition(follower);

        // The cut-off follower keeps asking for a leader's read index until its own deadline; the caller gives up
        // first (as a client whose deadline passed while the member was frozen does), and the member answers that
        // outcome instead of failing the call unhandled.
        using var givingUp = new CancellationTokenSource(TimeSpan.FromMilliseconds(500));
        var call = fleet.RawClient(follower).GetStatusAsync(
            new Protocol.V1.GetStatusRequest(), fleet.Headers("alice"), cancellationToken: givingUp.Token);
        var abandoned = await Assert.ThrowsAsync<RpcException>(() => call.ResponseAsync);
        Assert.Equal(StatusCode.Cancelled, abandoned.StatusCode);
        await Task.Delay(TimeSpan.FromSeconds(1)); // the member notices the reset and ends its side of the call

        fleet.Heal();
        await fleet.SettledAsync();
        await fleet.ConvergedStatusAsync("alice");
        fleet.AssertNoUnexpectedErrors();
    }
}
