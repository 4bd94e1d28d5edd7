using System.Security.Cryptography;
using Grpc.Core;
using Grpc.Net.Client;
using HsmVault.Client;
using HsmVault.EndToEnd.Tests.Support;
using HsmVault.Protocol.V1;
using Xunit.Abstractions;
using ProtoVault = HsmVault.Protocol.V1.Vault;

namespace HsmVault.EndToEnd.Tests;

/// <summary>
/// The real hsmvaultd executable as a child process: start-up errors an operator can act on,
/// and crash consistency under kill -9 and a fault point that kills the daemon right after a
/// guess is committed, before its KE2 is sent.
/// </summary>
public sealed class DaemonProcessTests(ITestOutputHelper output) : IDisposable
{
    private const string User = "crash-user";
    private readonly DaemonSetup _setup = DaemonSetup.Create();
    private readonly List<GrpcChannel> _channels = [];
    private readonly List<ChildDaemon> _daemons = [];

    [Fact]
    public async Task Start_WithUnknownTokenLabel_ExitsNonZero_NamingTheSlotsPresent_WithoutStackTrace()
    {
        var settings = _setup.Configuration();
        settings["HsmVault:Token:TokenLabel"] = "no-such-token";
        var config = _setup.WriteJsonConfig(settings);

        var result = await RunToExitAsync(config);

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("hsmvaultd: ", result.StandardError, StringComparison.Ordinal);
        Assert.Contains("not found", result.StandardError, StringComparison.Ordinal);
        Assert.Contains("slots present", result.StandardError, StringComparison.Ordinal);
        Assert.Contains($"label '{_setup.Token.TokenLabel}'", result.StandardError, StringComparison.Ordinal);
        AssertNoStackTrace(result.AllOutput);
        Assert.Empty(_setup.SecretsIn(result.AllOutput));
    }

    [Fact]
    public async Task Start_WithoutPinConfiguration_ExitsNonZero_MentioningPinFile_WithoutStackTrace()
    {
        var settings = _setup.Configuration();
        settings["HsmVault:Token:PinFile"] = null;
        var config = _setup.WriteJsonConfig(settings);

        var result = await RunToExitAsync(config);

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("hsmvaultd: ", result.StandardError, StringComparison.Ordinal);
        Assert.Contains("PinFile", result.StandardError, StringComparison.Ordinal);
        AssertNoStackTrace(result.AllOutput);
    }

    [Fact]
    public async Task Start_WithWrongPin_ExitsNonZero_WithoutShowingEitherPin()
    {
        var wrongPinFile = Path.Combine(_setup.WorkDirectory, "wrong.pin");
        var wrongPin = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        File.WriteAllText(wrongPinFile, wrongPin + "\n");
        _setup.AddSecret(wrongPin);
        var settings = _setup.Configuration();
        settings["HsmVault:Token:PinFile"] = wrongPinFile;

        var result = await RunToExitAsync(_setup.WriteJsonConfig(settings));

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("wrong PIN", result.StandardError, StringComparison.Ordinal);
        AssertNoStackTrace(result.AllOutput);
        Assert.Empty(_setup.SecretsIn(result.AllOutput));
    }

    [Fact]
    public async Task Start_WithoutTenants_ExitsNonZero_SayingWhatToConfigure()
    {
        var settings = _setup.Configuration();
        foreach (var key in settings.Keys.Where(k => k.StartsWith("HsmVault:Auth:", StringComparison.Ordinal)).ToList())
        {
            settings.Remove(key);
        }

        var result = await RunToExitAsync(_setup.WriteJsonConfig(settings));

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("HsmVault:Auth:Tenants", result.StandardError, StringComparison.Ordinal);
        AssertNoStackTrace(result.AllOutput);
    }

    [Fact]
    public async Task Start_WithMissingTenantKeyFile_ExitsNonZero_NamingTheFile()
    {
        var settings = _setup.Configuration();
        var missing = Path.Combine(_setup.WorkDirectory, "no-such-tenant.pub.pem");
        settings["HsmVault:Auth:Tenants:1:PublicKeyFile"] = missing;

        var result = await RunToExitAsync(_setup.WriteJsonConfig(settings));

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains(missing, result.StandardError, StringComparison.Ordinal);
        AssertNoStackTrace(result.AllOutput);
    }

    [Theory]
    [InlineData("missing")]
    [InlineData("not JSON")]
    public async Task Start_WithUnusableConfigFile_ExitsNonZero_NamingTheFile_WithoutStackTrace(string problem)
    {
        var config = Path.Combine(_setup.WorkDirectory, "broken.json");
        if (problem == "not JSON")
        {
            File.WriteAllText(config, "{ \"HsmVault\": ");
        }

        var result = await RunToExitAsync(config);

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("hsmvaultd: ", result.StandardError, StringComparison.Ordinal);
        Assert.Contains("broken.json", result.StandardError, StringComparison.Ordinal);
        AssertNoStackTrace(result.AllOutput);
    }

    [Fact]
    public async Task Daemon_OnSigterm_StopsCleanlyWithExitCodeZero()
    {
        var password = _setup.NewPassword();
        await using var daemon = await StartDaemonAsync(_setup.WriteJsonConfig(_setup.Configuration()));
        await Client(daemon).RegisterAsync(password, _setup.NewBackupKey());

        var exitCode = await daemon.TerminateAsync();

        Assert.True(exitCode == 0, daemon.Output);
        AssertNoStackTrace(daemon.Output);
        AssertCleanOutput(daemon);
    }

    [Fact]
    public async Task Daemon_KilledAfterGuessCommittedBeforeKe2_KeepsTheGuessCharged()
    {
        var config = _setup.WriteJsonConfig(_setup.Configuration());
        var password = _setup.NewPassword();
        var key = _setup.NewBackupKey();
        await using (var unarmed = await StartDaemonAsync(config))
        {
            await Client(unarmed).RegisterAsync(password, key);
            await unarmed.KillAsync();
            AssertCleanOutput(unarmed);
        }

        await using (var armed = await StartDaemonAsync(config, new Dictionary<string, string> { ["HSMVAULT_FAULT_POINT"] = "after-charge-committed" }))
        {
            var raw = Raw(armed);
            var error = await Assert.ThrowsAsync<RpcException>(async () =>
                await raw.StartRecoveryAsync(new StartRecoveryRequest { Ke1 = Messages.Ke1(password) }, _setup.Headers(User), deadline: Deadline()));
            var exitCode = await armed.WaitForExitAsync();

            Assert.True(error.StatusCode is StatusCode.Unavailable or StatusCode.Internal, error.Status.ToString());
            Assert.NotEqual(0, exitCode);
            Assert.Contains("after-charge-committed", armed.Output, StringComparison.Ordinal);
            Assert.Empty(_setup.SecretsIn(armed.Output));
        }

        await using var restarted = await StartDaemonAsync(config);
        var client = Client(restarted);
        var status = await client.GetStatusAsync();
        var recovered = await client.RecoverAsync(password);

        Assert.True(status.Registered);
        Assert.Equal(9u, status.GuessesRemaining);
        Assert.Equal(RecoveryStatus.Recovered, recovered.Status);
        Assert.Equal(key, recovered.BackupKey);
        await restarted.KillAsync();
        AssertCleanOutput(restarted);
    }

    [Fact]
    public async Task Daemon_KilledAtRandomMomentsDuringRecoveries_NeverAnswersAGuessItDidNotCharge()
    {
        const int Rounds = 5;
        const int MaxAnswersBeforeKill = 30;
        const uint Limit = 255;
        var seed = Environment.TickCount;
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        var settings = _setup.Configuration();
        // The test abandons most of its logins on purpose: more than one user's usual quota.
        settings["HsmVault:MaxRecoverySessionsPerUser"] = "1000";
        var config = _setup.WriteJsonConfig(settings);
        var password = _setup.NewPassword();
        await using (var first = await StartDaemonAsync(config))
        {
            await Client(first).RegisterAsync(password, _setup.NewBackupKey(), (int)Limit);
            await first.KillAsync();
        }

        var answered = 0;
        for (var round = 0; round < Rounds; round++)
        {
            await using var daemon = await StartDaemonAsync(config);
            var raw = Raw(daemon);
            var ke1 = Messages.Ke1(password);
            // Kill once the client has had a random number of answers, plus a few random
            // milliseconds, so the kill lands before, inside and between calls.
            var killAfter = random.Next(0, MaxAnswersBeforeKill + 1);
            var reached = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var calls = Task.Run(async () =>
            {
                var received = 0;
                try
                {
                    while (true)
                    {
                        if (received == killAfter)
                        {
                            reached.TrySetResult();
                        }

                        var started = await raw.StartRecoveryAsync(new StartRecoveryRequest { Ke1 = ke1 }, _setup.Headers(User), deadline: Deadline());
                        Assert.Equal(OpaqueKe2Bytes, started.Ke2.Length);
                        received++;
                    }
                }
                catch (RpcException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.Internal or StatusCode.Cancelled)
                {
                    // The daemon was killed under this call.
                }

                return received;
            });
            await Task.WhenAny(reached.Task, calls);
            await Task.Delay(random.Next(0, 15));
            await daemon.KillAsync();
            answered += await calls;
            Assert.Empty(_setup.SecretsIn(daemon.Output));
        }

        await using var restarted = await StartDaemonAsync(config);
        var status = await Client(restarted).GetStatusAsync();
        var charged = (int)(Limit - status.GuessesRemaining);
        output.WriteLine($"answered {answered}, charged {charged}");

        Assert.True(status.Registered);
        Assert.True(charged >= answered, $"{answered} KE2s were answered but only {charged} guesses are charged (seed {seed})");
        // With one sequential client, each kill can cost at most the one guess in flight.
        Assert.True(charged <= answered + Rounds, $"{charged} guesses charged for {answered} answers in {Rounds} rounds (seed {seed})");
        await restarted.KillAsync();
        AssertCleanOutput(restarted);
    }

    public void Dispose()
    {
        // What every daemon printed, for the test's output (a failure is then readable).
        foreach (var daemon in _daemons)
        {
            output.WriteLine($"--- hsmvaultd ---\n{daemon.Output}");
        }

        foreach (var channel in _channels)
        {
            channel.Dispose();
        }

        _setup.Dispose();
    }

    private const int OpaqueKe2Bytes = 320;

    private static DateTime Deadline() => DateTime.UtcNow.AddMinutes(2);

    private static void AssertNoStackTrace(string text)
    {
        Assert.DoesNotContain("   at ", text, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", text, StringComparison.Ordinal);
    }

    private async Task<ProcessResult> RunToExitAsync(string config)
    {
        await using var daemon = await StartDaemonAsync(config, waitUntilListening: false);
        var exitCode = await daemon.WaitForExitAsync();
        return new ProcessResult(exitCode, daemon.StandardOutput, daemon.StandardError);
    }

    private void AssertCleanOutput(ChildDaemon daemon)
    {
        var text = daemon.Output;
        Assert.Empty(_setup.SecretsIn(text));
        var errors = text.Split('\n').Where(l => l.Contains("fail: ", StringComparison.Ordinal) || l.Contains("crit: ", StringComparison.Ordinal)).ToList();
        Assert.True(errors.Count == 0, string.Join('\n', errors));
    }

    private async Task<ChildDaemon> StartDaemonAsync(string config, IReadOnlyDictionary<string, string>? environment = null, bool waitUntilListening = true)
    {
        var daemon = await ChildDaemon.StartAsync(config, environment, waitUntilListening: waitUntilListening);
        _daemons.Add(daemon);
        return daemon;
    }

    private GrpcChannel Channel(ChildDaemon daemon)
    {
        var channel = GrpcChannel.ForAddress(daemon.Address);
        _channels.Add(channel);
        return channel;
    }

    private VaultClient Client(ChildDaemon daemon)
    {
        var jwt = _setup.Mint(User);
        return new VaultClient(Channel(daemon).CreateCallInvoker(), _ => ValueTask.FromResult(jwt));
    }

    private ProtoVault.VaultClient Raw(ChildDaemon daemon) => new(Channel(daemon));
}
