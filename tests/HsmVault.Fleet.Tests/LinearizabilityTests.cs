using System.Globalization;
using System.Text;
using HsmVault.Fleet.Tests.Support;
using HsmVault.Testing.Linearizability;
using Xunit.Abstractions;

namespace HsmVault.Fleet.Tests;

/// <summary>
/// Concurrent clients against every member of a real fleet, with a fault in the middle; the
/// recorded history must be linearizable against <see cref="VaultModel"/> and keep every guess budget.
/// </summary>
public sealed class LinearizabilityTests(ITestOutputHelper output)
{
    private const int Clients = 5;
    private const int IterationsPerClient = 50;
    private const int GuessLimit = 4;
    private static readonly string[] Users = ["u0", "u1", "u2", "u3", "u4", "u5"];

    [Fact]
    public async Task ConcurrentClients_WithTheLeaderPartitionedMidway_HistoryIsLinearizable()
    {
        await using var fleet = await FleetFixture.CreateAsync();
        await RunAsync(fleet, async () =>
        {
            var leader = await fleet.SettledAsync();
            fleet.Partition(leader);
            return async () =>
            {
                fleet.Heal();
                await fleet.SettledAsync();
            };
        });
        fleet.AssertNoUnexpectedErrors();
    }

    [Fact]
    public async Task ConcurrentClients_WithAMemberKilledAndRestarted_HistoryIsLinearizable()
    {
        await using var fleet = await FleetFixture.CreateAsync(new FleetSettings { Hosting = MemberHosting.ChildProcess });
        await RunAsync(fleet, async () =>
        {
            var victim = await fleet.LeaderAsync();
            await victim.KillAsync();
            return async () =>
            {
                await victim.StartAsync();
                await fleet.SettledAsync();
            };
        });
    }

    /// <summary>
    /// Registers the users, then runs the clients; when a third of the iterations are done it
    /// injects the fault, and when two thirds are done it repairs it.
    /// </summary>
    private async Task RunAsync(FleetFixture fleet, Func<Task<Func<Task>>> injectFault)
    {
        var seed = Random.Shared.Next();
        output.WriteLine($"seed {seed}");
        var history = new HistoryRecorder<VaultInput, VaultOutput>();
        var passwords = Users.ToDictionary(u => u, u => Encoding.UTF8.GetBytes("password of " + u), StringComparer.Ordinal);
        var wrong = Encoding.UTF8.GetBytes("a wrong password");
        await fleet.SettledAsync();
        var setup = new RecordingClient(fleet, history, clientId: 0);
        for (var i = 0; i < Users.Length; i++)
        {
            await setup.EnsureRegisteredAsync(fleet[i % fleet.Members.Count], Users[i], passwords[Users[i]], GuessLimit);
        }

        var done = 0;
        var total = Clients * IterationsPerClient;
        var faultInjected = new TaskCompletionSource<Func<Task>>(TaskCreationOptions.RunContinuationsAsynchronously);
        var faultRepaired = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var clients = Enumerable.Range(1, Clients).Select(id => new RecordingClient(fleet, history, id, exactWrongPasswordCounts: false)).ToList();

        async Task ClientAsync(RecordingClient client, Random random)
        {
            for (var i = 0; i < IterationsPerClient; i++)
            {
                var user = Users[random.Next(Users.Length)];
                var member = fleet[random.Next(fleet.Members.Count)];
                var roll = random.Next(100);
                object? answer = roll switch
                {
                    < 40 => await client.RecoverAsync(member, user, wrong),
                    < 60 => await client.RecoverAsync(member, user, passwords[user]),
                    < 80 => await client.StatusAsync(member, user),
                    _ => await client.RegisterAsync(member, user, passwords[user], GuessLimit, replace: roll < 90),
                };
                if (answer is null)
                {
                    // Refused (a dead member fails at once): back off, as a real client would, so
                    // the fault lasts long enough for the rest of the fleet to be exercised.
                    await Task.Delay(random.Next(100, 300));
                }

                var finished = Interlocked.Increment(ref done);
                if (finished == total / 3)
                {
                    faultInjected.SetResult(await injectFault());
                }
                else if (finished == 2 * total / 3)
                {
                    var repair = await faultInjected.Task;
                    await repair();
                    faultRepaired.SetResult();
                }
            }
        }

        await Task.WhenAll(clients.Select((c, i) => Task.Run(() => ClientAsync(c, new Random(seed + i)))));
        await faultRepaired.Task.WaitAsync(Poll.Patience);

        var operations = history.History();
        var answered = operations.Count(op => !op.IsPending);
        var charged = operations.Count(op => op.Output is VaultOutput.Charged);
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{operations.Count} operations, {answered} answered, {charged} guesses charged"));
        Assert.True(answered > total / 2, $"only {answered} of {operations.Count} operations were answered (seed {seed})");
        Assert.True(charged > 0, "no guess was ever charged");

        var report = VaultHistory.Verify(operations, TimeSpan.FromSeconds(90));
        output.WriteLine(report.ToString());
        if (!report.Passed)
        {
            var failed = report.Linearizability.Partitions.Where(p => p.Outcome != CheckOutcome.Linearizable).Select(p => p.Key).ToHashSet(StringComparer.Ordinal);
            output.WriteLine("history of the failed keys, for RecordedHistories:");
            output.WriteLine(VaultHistory.Dump(operations.Where(op => failed.Contains(op.Key))));
        }

        Assert.True(report.Passed, $"seed {seed}\n{report}");
        Assert.Empty(setup.Unexpected.Concat(clients.SelectMany(c => c.Unexpected)));

        // After the repair every member agrees with the history's last word.
        await fleet.ConvergedStatusAsync(Users);
    }
}
