using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using HsmVault.Fleet.Tests.Support;
using HsmVault.Server.Peering;
using HsmVault.Testing.Linearizability;
using HsmVault.Vault.State;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace HsmVault.Fleet.Tests;

/// <summary>A wiped member of a fleet whose state is far larger than one peer message catches up, by a snapshot sent in chunks.</summary>
public sealed partial class LargeStateCatchUpTests(ITestOutputHelper output)
{
    private const int SeededUsers = 1_000_000;
    private static readonly byte[] Password = Encoding.UTF8.GetBytes("large state password");

    // Event ids of RaftHostLog, GrpcRaftTransport and PeerGrpcService.
    private const int SnapshotInstalledEvent = 3006;
    private const int SnapshotSentEvent = 6002;
    private const int SnapshotReceivedEvent = 6103;

    [Fact]
    public async Task WipedFollower_OfAMillionUserFleet_CatchesUpByChunkedSnapshot()
    {
        await using var fleet = await FleetFixture.CreateAsync(new FleetSettings { SnapshotEveryEntries = 4, Start = false });

        // Every member of a new fleet seeded alike holds the same state: seed one, copy its database to the others.
        var seeding = Stopwatch.StartNew();
        VaultStateMachine.SeedSyntheticUsers(fleet[0].DataDirectory, FleetFixture.Tenant, SeededUsers);
        foreach (var member in fleet.Members.Skip(1))
        {
            Directory.CreateDirectory(member.DataDirectory);
            foreach (var file in Directory.EnumerateFiles(fleet[0].DataDirectory))
            {
                File.Copy(file, Path.Combine(member.DataDirectory, Path.GetFileName(file)));
            }
        }

        output.WriteLine($"seeded {SeededUsers} users in {seeding.Elapsed.TotalSeconds:F1} s");
        await fleet.StartAllAsync();
        var history = new HistoryRecorder<VaultInput, VaultOutput>();
        var client = new RecordingClient(fleet, history, clientId: 1);
        var leader = await fleet.SettledAsync();

        // More than SnapshotEveryEntries writes: the leader snapshots the whole state and compacts its log.
        var users = Enumerable.Range(0, 5).Select(i => $"user-{i}").ToArray();
        foreach (var user in users)
        {
            await client.EnsureRegisteredAsync(leader, user, Password, limit: 10);
        }

        await Poll.UntilAsync(() => leader.Raft.Status!.SnapshotIndex > 0, "the leader to take a snapshot");
        var wiped = fleet.Others(leader)[0];
        await wiped.StopAsync();
        Directory.Delete(wiped.DataDirectory, recursive: true);
        await client.EnsureRegisteredAsync(leader, "after-wipe", Password, limit: 10);

        var catchUp = Stopwatch.StartNew();
        await wiped.StartAsync();
        var leaderState = leader.Services.GetRequiredService<VaultStateMachine>();
        var wipedState = wiped.Services.GetRequiredService<VaultStateMachine>();
        await Poll.UntilAsync(
            () => wipedState.AppliedIndex == leaderState.AppliedIndex && wipedState.AppliedIndex > 0,
            "the wiped member to apply as far as the leader",
            TimeSpan.FromMinutes(5));
        catchUp.Stop();

        Assert.Equal(leaderState.Digest, wipedState.Digest);
        Assert.Equal(SeededUsers + users.Length + 1, wipedState.CountRecords());
        Assert.Equal(leaderState.CountRecords(), wipedState.CountRecords());
        Assert.True(wiped.Logs.Contains(SnapshotInstalledEvent), wiped.Logs.Text);
        Assert.True(wiped.Logs.Contains(SnapshotReceivedEvent), wiped.Logs.Text);

        // The snapshot did not fit one peer message: it travelled in chunks.
        // (Sent by whoever led by then: a leader busy writing its snapshot may lose its lead meanwhile.)
        var sent = fleet.Members.SelectMany(m => m.Logs.Events)
            .Where(e => e.EventId.Id == SnapshotSentEvent && e.Message.Contains($" to {wiped.Id} in ", StringComparison.Ordinal))
            .Select(e => e.Message)
            .ToList();
        Assert.True(sent.Count > 0, fleet.AllLogs());
        var bytes = long.Parse(SentBytes().Match(sent[^1]).Groups["bytes"].Value, CultureInfo.InvariantCulture);
        Assert.True(bytes > PeerConnections.MaxMessageBytes * 10L, sent[^1]);

        // Served as the others do: the status of a user registered after the wipe.
        var status = await fleet.ConvergedStatusAsync([.. users, "after-wipe"]);
        Assert.Equal(10u, status["after-wipe"].GuessesRemaining);

        var line = string.Create(
            CultureInfo.InvariantCulture,
            $"CATCH-UP: a wiped follower of a fleet of {SeededUsers} users caught up by a {bytes / (1024.0 * 1024.0):F0} MiB snapshot in {catchUp.Elapsed.TotalSeconds:F1} s ({sent[^1]})");
        output.WriteLine(line);
        Console.WriteLine(line);
        Assert.Empty(client.Unexpected);
        fleet.AssertNoUnexpectedErrors();
    }

    [GeneratedRegex(@"\((?<bytes>\d+) bytes\)", RegexOptions.CultureInvariant)]
    private static partial Regex SentBytes();
}
