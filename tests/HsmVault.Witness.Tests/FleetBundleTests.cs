using System.Text.Json;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Google.Protobuf;
using HsmVault.Cli.Commands;
using HsmVault.Client;
using HsmVault.Protocol.Bundles;
using HsmVault.Protocol.V1;
using HsmVault.Server;
using HsmVault.Testing.Daemons;
using HsmVault.Transparency.Bundles;
using HsmVault.Witness.Tests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace HsmVault.Witness.Tests;

/// <summary>Two real witnesses (Kestrel on 127.0.0.1 port 0, keys in SoftHSM2 tokens), shared by the tests of <see cref="FleetBundleTests"/>.</summary>
public sealed class TwoWitnesses : IAsyncLifetime
{
    /// <summary>Namespaces <c>fleet-0</c>..; each test publishes in its own, so epochs never collide.</summary>
    public const int Namespaces = 12;

    public WitnessSetup A { get; } = new(Namespaces, "witness-a.test/log");

    public WitnessSetup B { get; } = new(Namespaces, "witness-b.test/log");

    /// <summary>A third witness's key that attests nothing: pinned by clients that should not accept the bundles.</summary>
    public WitnessSetup Unrelated { get; } = new(1, "witness-c.test/log");

    public InProcessWitness WitnessA { get; private set; } = null!;

    public InProcessWitness WitnessB { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        WitnessA = await InProcessWitness.StartAsync(A.Settings());
        // Witness B accepts A's operators for the same namespaces: one operator per namespace.
        var settings = B.Settings();
        for (var i = 0; i < Namespaces; i++)
        {
            settings[$"HsmVault:Witness:Namespaces:{i}:OperatorKeys:0:PublicKey"] = A.Operators[i].PublicKeyBase64;
        }

        WitnessB = await InProcessWitness.StartAsync(settings);
    }

    public async Task DisposeAsync()
    {
        await WitnessA.DisposeAsync();
        await WitnessB.DisposeAsync();
        A.Dispose();
        B.Dispose();
        Unrelated.Dispose();
    }
}

/// <summary>
/// A member serving its validation bundle, and clients (the library and the CLI) that verify it
/// before they send a password-derived byte: the bundle published by <c>hsmvault fleet bundle</c>
/// from the member's own token at two real witnesses, served by a real daemon from
/// <c>HsmVault:Bundle:File</c>, and every refusal naming what failed.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class FleetBundleTests(TwoWitnesses witnesses) : IClassFixture<TwoWitnesses>, IAsyncLifetime
{
    private readonly List<TestDaemon> _daemons = [];
    private readonly string _work = Directory.CreateTempSubdirectory("hsmvault-bundle-").FullName;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var daemon in _daemons)
        {
            await daemon.DisposeAsync();
        }

        Directory.Delete(_work, recursive: true);
    }

    [Fact]
    public async Task Member_ServesTheBundleItsOperatorPublished_AndAVerifyingClientRegistersAndRecovers()
    {
        var (daemon, bundleFile, _) = await StartWithBundleAsync(ns: 0);
        var served = BundleMessages.ReadFile(bundleFile);
        var digest = BundleCodec.Digest(served.Bundle.Span);

        // GetFleetInfo answers from the bundle, and every response names the bundle.
        var raw = daemon.CreateRawClient();
        var call = raw.GetFleetInfoAsync(new GetFleetInfoRequest());
        var info = await call;
        Assert.Equal(1UL, info.BundleEpoch);
        Assert.Equal(digest, info.BundleDigest.ToByteArray());
        var headers = await call.ResponseHeadersAsync;
        Assert.Equal("1", headers.GetValue("hsmvault-bundle-epoch"));
        Assert.Equal(Convert.ToHexStringLower(digest), headers.GetValue("hsmvault-bundle-digest"));
        var refused = raw.GetStatusAsync(new GetStatusRequest());
        await Assert.ThrowsAsync<RpcException>(() => refused.ResponseAsync);
        Assert.Equal("1", (await refused.ResponseHeadersAsync).GetValue("hsmvault-bundle-epoch"));

        var client = Client(daemon, "alice", Trust(ns: 0, required: 2));
        var verified = await client.VerifyFleetAsync();
        Assert.Equal(DaemonSetup.FleetId, verified.Bundle.FleetId);
        Assert.Equal(2, verified.Checkpoints.Count);
        var password = daemon.Setup.NewPassword();
        var backupKey = daemon.Setup.NewBackupKey();
        await client.RegisterAsync(password, backupKey, guessLimit: 5);
        var recovered = await client.RecoverAsync(password);
        Assert.Equal(RecoveryStatus.Recovered, recovered.Status);
        Assert.Equal(backupKey, recovered.BackupKey);
        daemon.AssertCleanLogs();
    }

    [Fact]
    public async Task Cli_VerifiesTheBundle_KeepsItsTrustState_AndRefusesWithoutPinnedKeys()
    {
        var (daemon, _, _) = await StartWithBundleAsync(ns: 1);
        var passwordFile = Path.Combine(_work, "password");
        File.WriteAllText(passwordFile, "correct horse battery staple\n");
        var stateFile = Path.Combine(_work, "trust-state.json");
        string[] trust =
        [
            "--witness-key", witnesses.A.NoteKey.VerifierKey, "--witness-key", witnesses.B.NoteKey.VerifierKey, "--witness-policy", "2",
            "--operator-key", Convert.ToBase64String(witnesses.A.Operators[1].PublicKey.PublicKey), "--trust-state", stateFile,
        ];

        var register = await CliAsync(daemon, ["register", "--user", "carol", "--password-file", passwordFile, .. trust]);
        Assert.True(register.ExitCode == 0, register.AllOutput);
        var recover = await CliAsync(daemon, ["recover", "--user", "carol", "--password-file", passwordFile, .. trust]);
        Assert.True(recover.ExitCode == 0, recover.AllOutput);
        Assert.Contains("backup key:", recover.StandardOutput, StringComparison.Ordinal);

        // The documented trust state: the namespace's epoch and digest, each witness's checkpoint; mode 0600.
        using (var state = JsonDocument.Parse(File.ReadAllText(stateFile)))
        {
            Assert.Equal(ClientTrustState.Format, state.RootElement.GetProperty("format").GetString());
            Assert.Equal(1UL, state.RootElement.GetProperty("namespaces").GetProperty("fleet-1").GetProperty("epoch").GetUInt64());
            Assert.True(state.RootElement.GetProperty("witnesses").TryGetProperty(witnesses.A.Origin, out _));
            Assert.True(state.RootElement.GetProperty("witnesses").TryGetProperty(witnesses.B.Origin, out _));
        }

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(stateFile));

        var unpinned = await CliAsync(daemon, ["recover", "--user", "carol", "--password-file", passwordFile, "--trust-state", stateFile]);
        Assert.Equal(64, unpinned.ExitCode);
        Assert.Contains("pin the fleet's witnesses and operator", unpinned.StandardError, StringComparison.Ordinal);

        // A trust state that saw a higher epoch of the namespace: the CLI refuses before any password byte.
        var text = File.ReadAllText(stateFile).Replace("\"epoch\": 1", "\"epoch\": 9", StringComparison.Ordinal);
        File.WriteAllText(stateFile, text);
        var rolledBack = await CliAsync(daemon, ["recover", "--user", "carol", "--password-file", passwordFile, .. trust]);
        Assert.Equal(6, rolledBack.ExitCode);
        Assert.Contains("EpochRolledBack", rolledBack.StandardError, StringComparison.Ordinal);
        Assert.Contains("epoch 9", rolledBack.StandardError, StringComparison.Ordinal);
        var status = await daemon.CreateClient("carol").GetStatusAsync();
        Assert.Equal(status.GuessLimit, status.GuessesRemaining);
    }

    [Fact]
    public async Task Client_RefusesUnknownWitnesses_TooFewWitnesses_AndAMemberWithoutABundle()
    {
        var (daemon, _, _) = await StartWithBundleAsync(ns: 2, witnessCount: 1);

        var unknown = new FleetTrust(new BundleTrustPolicy([witnesses.Unrelated.NoteKey], 1, [witnesses.A.Operators[2].PublicKey]));
        var refusal = await Assert.ThrowsAsync<BundleRefusedException>(() => Client(daemon, "u", unknown).RegisterAsync(daemon.Setup.NewPassword(), daemon.Setup.NewBackupKey()));
        Assert.Equal(BundleRefusal.UnknownWitness, refusal.Reason);
        Assert.Contains("witness-a.test/log", refusal.Message, StringComparison.Ordinal);

        // Logged at witness A only; the policy wants both.
        refusal = await Assert.ThrowsAsync<BundleRefusedException>(() => Client(daemon, "u", Trust(ns: 2, required: 2)).RecoverAsync(daemon.Setup.NewPassword()));
        Assert.Equal(BundleRefusal.TooFewWitnesses, refusal.Reason);
        Assert.Contains("1 of the 2 pinned witnesses", refusal.Message, StringComparison.Ordinal);

        // Another operator's key pinned: the operator signature names the mismatch.
        var otherOperator = new FleetTrust(new BundleTrustPolicy([witnesses.A.NoteKey], 1, [witnesses.A.Operators[3].PublicKey]));
        refusal = await Assert.ThrowsAsync<BundleRefusedException>(() => Client(daemon, "u", otherOperator).VerifyFleetAsync());
        Assert.Equal(BundleRefusal.OperatorSignatureInvalid, refusal.Reason);

        var plain = await TestDaemon.StartAsync();
        _daemons.Add(plain);
        refusal = await Assert.ThrowsAsync<BundleRefusedException>(() => Client(plain, "u", Trust(ns: 2, required: 1)).RegisterAsync(plain.Setup.NewPassword(), plain.Setup.NewBackupKey()));
        Assert.Equal(BundleRefusal.NotServed, refusal.Reason);
        Assert.Contains("HsmVault:Bundle:File is not set", refusal.Message, StringComparison.Ordinal);
        Assert.False((await plain.CreateClient("u").GetStatusAsync()).Registered);
    }

    [Fact]
    public async Task Client_RefusesAServerWhoseKeyIsNotTheBundles_InTheRegistrationResponse_ItsSignature_AndKe2()
    {
        var (fleet, _, _) = await StartWithBundleAsync(ns: 4);
        var impostor = await TestDaemon.StartAsync();
        _daemons.Add(impostor);
        var trust = Trust(ns: 4, required: 2);

        // The bundle comes from the real fleet, everything else from another server (a fleet in the middle).
        var refusal = await Assert.ThrowsAsync<BundleRefusedException>(() =>
            Routed(fleet, impostor, "mallory", trust).RegisterAsync(fleet.Setup.NewPassword(), fleet.Setup.NewBackupKey()));
        Assert.Equal(BundleRefusal.OpaqueKeyMismatch, refusal.Reason);
        Assert.False((await impostor.CreateClient("mallory").GetStatusAsync()).Registered);

        // The impostor's RegistrationResponse with the fleet's public key put in: its own OPRF key stays, and no fleet signature covers it.
        var fleetKey = (await fleet.CreateRawClient().GetFleetInfoAsync(new GetFleetInfoRequest())).ServerPublicKey;
        refusal = await Assert.ThrowsAsync<BundleRefusedException>(() =>
            Routed(fleet, impostor, "mallory", trust, new SwapRegistrationKey(fleetKey)).RegisterAsync(fleet.Setup.NewPassword(), fleet.Setup.NewBackupKey()));
        Assert.Equal(BundleRefusal.RegistrationNotVouched, refusal.Reason);
        Assert.False((await impostor.CreateClient("mallory").GetStatusAsync()).Registered);

        // A user registered at the impostor (without verification): at login the envelope's key is the impostor's, not the bundle's.
        var password = impostor.Setup.NewPassword();
        await impostor.CreateClient("victim").RegisterAsync(password, impostor.Setup.NewBackupKey());
        refusal = await Assert.ThrowsAsync<BundleRefusedException>(() => Routed(fleet, impostor, "victim", trust).RecoverAsync(password));
        Assert.Equal(BundleRefusal.OpaqueKeyMismatch, refusal.Reason);
        Assert.Contains("is not the key", refusal.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Member_RefusesToStartWithAnotherMembersBundle_AndReloadsOnlyAHigherEpoch()
    {
        var (daemon, bundleFile, _) = await StartWithBundleAsync(ns: 5, reloadSeconds: 1);

        // Same fleet id and member id, other tokens: the start is refused, naming the mismatch.
        var refused = await Assert.ThrowsAnyAsync<Exception>(() => TestDaemon.StartAsync(settings => settings["HsmVault:Bundle:File"] = bundleFile));
        Assert.IsType<StartupRefusedException>(refused.GetBaseException() as StartupRefusedException ?? refused);
        Assert.Contains("is not this member's bundle", refused.Message, StringComparison.Ordinal);

        var epochOne = Path.Combine(_work, "bundle-5-epoch-1.pb");
        File.Copy(bundleFile, epochOne);
        await PublishAsync(daemon, ns: 5, epoch: 2, bundleFile);
        var info = await WaitForAsync(daemon, i => i.BundleEpoch == 2);
        Assert.Equal(BundleCodec.Digest(BundleMessages.ReadFile(bundleFile).Bundle.Span), info.BundleDigest.ToByteArray());

        // An older epoch put back is refused: clients that saw epoch 2 would refuse it in turn.
        daemon.ExpectErrors(e => e.EventId.Id == 1012);
        File.Copy(epochOne, bundleFile, overwrite: true);
        File.SetLastWriteTimeUtc(bundleFile, DateTime.UtcNow.AddSeconds(5));
        await WaitForLogAsync(daemon, 1012);
        Assert.Equal(2UL, (await daemon.CreateRawClient().GetFleetInfoAsync(new GetFleetInfoRequest())).BundleEpoch);
        Assert.Contains(daemon.Logs.Events, e => e.EventId.Id == 1012 && e.Message.Contains("not above the served epoch 2", StringComparison.Ordinal));
    }

    [Fact]
    public async Task RetiredFleet_PastItsNotAfter_RefusesRegistrations_NamingItsSuccessor_ButStillRecovers()
    {
        // The daemon's clock 31 days ahead: the 30-day bundle is past its not-after.
        byte[] password = [];
        var successorFile = Path.Combine(_work, "successor-6.pb");
        var (daemon, oldBundle, _) = await StartWithBundleAsync(ns: 6, configure: settings => settings["HsmVault:Bundle:SuccessorFile"] = successorFile,
            services: services => services.AddSingleton<TimeProvider>(new ShiftedTime(TimeSpan.FromDays(31))),
            beforeBundle: async member =>
            {
                password = member.Setup.NewPassword();
                await member.CreateClient("old-user").RegisterAsync(password, member.Setup.NewBackupKey());
            });
        var (successor, successorBundle, _) = await StartWithBundleAsync(ns: 6, epoch: 2, configure: settings =>
        {
            settings["HsmVault:FleetId"] = SuccessorFleet;
            settings["HsmVault:Bundle:Predecessors:0"] = oldBundle;
        }, publishOptions: "--days 90");
        File.Copy(successorBundle, successorFile);
        await daemon.RestartAsync();
        var raw = daemon.CreateRawClient();
        var refused = await Assert.ThrowsAsync<RpcException>(() => raw.StartRegistrationAsync(
            new StartRegistrationRequest { RegistrationRequest = ByteString.CopyFrom(new byte[32]) }, daemon.Setup.Headers("newcomer")).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, refused.StatusCode);
        Assert.Equal(RefusalReason.FleetRetired, RefusalTrailer.Of(refused));
        Assert.Contains("retired", refused.Status.Detail, StringComparison.Ordinal);
        // The endpoint its bundle names (the test daemon has moved to another port since it was published).
        Assert.Contains($"fleet '{SuccessorFleet}' (epoch 2) at http://127.0.0.1:", refused.Status.Detail, StringComparison.Ordinal);
        Assert.Contains(daemon.Logs.Events, e => e.EventId.Id == 1011);

        // A user registered before the fleet retired still recovers there, and moves to the successor:
        // a client whose clock also says the old bundle expired checks it as the successor's predecessor.
        var trust = new FleetTrust(Trust(ns: 6, required: 2).Policy, time: new ShiftedTime(TimeSpan.FromDays(31)));
        var recovered = await Following(daemon, successor, "old-user", trust).RecoverAsync(password);
        Assert.Equal(RecoveryStatus.Recovered, recovered.Status);
        Assert.True(recovered.MovedTo?.FleetId == SuccessorFleet, recovered.MoveFailure);
        Assert.True((await successor.CreateRawClient().GetStatusAsync(new GetStatusRequest(), Headers(successor, "old-user", SuccessorFleet))).Registered);
    }

    [Fact]
    public async Task SecondFleet_ClientsThatPinOnlyWitnessesAndOperatorFollowIt_UsersMoveOnRecovery_WithTheirHistory()
    {
        var successorFile = Path.Combine(_work, "successor-7.pb");
        var (old, oldBundle, _) = await StartWithBundleAsync(ns: 7, reloadSeconds: 1, configure: settings => settings["HsmVault:Bundle:SuccessorFile"] = successorFile);
        var trust = Trust(ns: 7, required: 2, stateFile: Path.Combine(_work, "trust-7.json"));
        var alicePassword = old.Setup.NewPassword();
        var aliceKey = old.Setup.NewBackupKey();
        var erinPassword = old.Setup.NewPassword();
        await Client(old, "alice", trust).RegisterAsync(alicePassword, aliceKey, guessLimit: 4);
        await Client(old, "erin", trust).RegisterAsync(erinPassword, old.Setup.NewBackupKey());

        // The operator brings up the next fleet (its own token and keys, epoch 2, taking users over from
        // the first), and the first fleet starts naming it without a restart.
        var (next, nextBundle, _) = await StartWithBundleAsync(ns: 7, epoch: 2, configure: settings =>
        {
            settings["HsmVault:FleetId"] = SuccessorFleet;
            settings["HsmVault:Bundle:Predecessors:0"] = oldBundle;
        });
        File.Copy(nextBundle, successorFile);
        await WaitForLogAsync(old, 1015);

        // Alice recovers through the old fleet's endpoint, and her record moves.
        var recovered = await Following(old, next, "alice", trust).RecoverAsync(alicePassword);
        Assert.Equal(RecoveryStatus.Recovered, recovered.Status);
        Assert.Equal(aliceKey, recovered.BackupKey);
        Assert.Equal((SuccessorFleet, 2UL), (recovered.MovedTo?.FleetId, recovered.MovedTo?.Epoch));
        Assert.False((await old.CreateRawClient().GetStatusAsync(new GetStatusRequest(), old.Setup.Headers("alice"))).Registered);
        var moved = await next.CreateRawClient().GetStatusAsync(new GetStatusRequest(), Headers(next, "alice", SuccessorFleet));
        Assert.True(moved.Registered);
        Assert.Equal(4U, moved.GuessLimit);
        Assert.Equal([(DaemonSetup.FleetId, 1UL), (SuccessorFleet, 2UL)], moved.History.Select(h => (h.FleetId, h.Epoch)));
        Assert.Contains(next.Logs.Events, e => e.EventId.Id == 5011);

        // The client accepted epoch 2, and still takes the old fleet's epoch 1 as its predecessor; her
        // next recovery, through the old endpoint, finds her on the new fleet.
        var again = await Following(old, next, "alice", trust).RecoverAsync(alicePassword);
        Assert.Equal(aliceKey, again.BackupKey);
        Assert.Null(again.MovedTo);

        // New users go straight to the new fleet.
        var carol = await Following(old, next, "carol", trust).RegisterAsync(old.Setup.NewPassword(), old.Setup.NewBackupKey());
        Assert.Equal(SuccessorFleet, carol.FleetId);
        Assert.False((await old.CreateRawClient().GetStatusAsync(new GetStatusRequest(), old.Setup.Headers("carol"))).Registered);

        // Erin's move is cut after the old fleet's receipt: she has no live record until her next
        // recovery, which activates the pending one (no guess spent) and recovers there.
        var cut = await Following(old, next, "erin", trust, new FailOnce("ActivateRecord")).RecoverAsync(erinPassword);
        Assert.Equal(RecoveryStatus.Recovered, cut.Status);
        Assert.NotNull(cut.MoveFailure);
        Assert.True((await next.CreateRawClient().GetStatusAsync(new GetStatusRequest(), Headers(next, "erin", SuccessorFleet))).MovePending);
        var finished = await Following(old, next, "erin", trust).RecoverAsync(erinPassword);
        Assert.Equal(RecoveryStatus.Recovered, finished.Status);
        Assert.Equal(SuccessorFleet, finished.MovedTo?.FleetId);
        var erin = await next.CreateRawClient().GetStatusAsync(new GetStatusRequest(), Headers(next, "erin", SuccessorFleet));
        Assert.Equal((true, erin.GuessLimit), (erin.Registered, erin.GuessesRemaining));
        old.AssertCleanLogs();
        next.AssertCleanLogs();
    }

    private const string SuccessorFleet = "e2e-fleet-2";

    /// <summary>A client pointed at <paramref name="old"/> that follows its successor to <paramref name="next"/>, with a token for each fleet.</summary>
    private static VaultClient Following(TestDaemon old, TestDaemon next, string user, FleetTrust trust, Interceptor? onSuccessor = null)
    {
        var jwt = old.Setup.Mint(user);
        var successorJwt = DevelopmentTokens.Mint(next.Setup.TenantKey, DaemonSetup.Tenant, user, SuccessorFleet, TimeSpan.FromMinutes(30));
        CallInvoker successorCalls = next.CreateChannel().CreateCallInvoker();
        if (onSuccessor is not null)
        {
            successorCalls = successorCalls.Intercept(onSuccessor);
        }

        return new VaultClient(old.CreateChannel().CreateCallInvoker(), _ => ValueTask.FromResult(jwt), trust: trust,
            successorClient: _ => new VaultClient(successorCalls, _ => ValueTask.FromResult(successorJwt), trust: trust));
    }

    private static Metadata Headers(TestDaemon daemon, string user, string fleetId) =>
        new() { { "authorization", "Bearer " + DevelopmentTokens.Mint(daemon.Setup.TenantKey, DaemonSetup.Tenant, user, fleetId, TimeSpan.FromMinutes(30)) } };

    private async Task<(TestDaemon Daemon, string BundleFile, string ConfigFile)> StartWithBundleAsync(
        int ns,
        ulong epoch = 1,
        int witnessCount = 2,
        int reloadSeconds = 30,
        Action<Dictionary<string, string?>>? configure = null,
        Action<IServiceCollection>? services = null,
        Func<TestDaemon, Task>? beforeBundle = null,
        string publishOptions = "")
    {
        var daemon = await TestDaemon.StartAsync(configure, services: services);
        _daemons.Add(daemon);
        if (beforeBundle is not null)
        {
            await beforeBundle(daemon);
        }

        var bundleFile = Path.Combine(_work, $"bundle-{ns}-{epoch}.pb");
        var configFile = await PublishAsync(daemon, ns, epoch, bundleFile, witnessCount, publishOptions);
        daemon.Settings["HsmVault:Bundle:File"] = bundleFile;
        daemon.Settings["HsmVault:Bundle:Witnesses:0"] = witnesses.WitnessA.Address.ToString();
        daemon.Settings["HsmVault:Bundle:Witnesses:1"] = witnesses.WitnessB.Address.ToString();
        daemon.Settings["HsmVault:Bundle:ReloadInterval"] = TimeSpan.FromSeconds(reloadSeconds).ToString();
        await daemon.RestartAsync();
        return (daemon, bundleFile, configFile);
    }

    /// <summary><c>hsmvault fleet bundle</c> for the daemon's token and configuration, at one or both witnesses; returns the configuration file.</summary>
    private async Task<string> PublishAsync(TestDaemon daemon, int ns, ulong epoch, string bundleFile, int witnessCount = 2, string extra = "")
    {
        var settings = new Dictionary<string, string?>(daemon.Settings) { ["HsmVault:Bundle:Endpoint"] = daemon.Address.ToString() };
        var configFile = daemon.Setup.WriteJsonConfig(settings, $"member-{ns}.json");
        var operatorKey = witnesses.A.Operators[ns].WritePrivateKeyPem(Path.Combine(_work, $"operator-{ns}.pem"));
        List<string> arguments =
        [
            "fleet", "bundle", "--config", configFile, "--namespace", witnesses.A.Operators[ns].Namespace, "--epoch", epoch.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--operator-key", operatorKey, "--out", bundleFile, "--witness", witnesses.WitnessA.Address.ToString(),
        ];
        if (witnessCount > 1)
        {
            arguments.AddRange(["--witness", witnesses.WitnessB.Address.ToString()]);
        }

        if (extra.Length > 0)
        {
            arguments.AddRange(extra.Split(' '));
        }

        var published = await ChildProcesses.RunAsync(ChildProcesses.CliDll, arguments, new Dictionary<string, string> { ["SOFTHSM2_CONF"] = Environment.GetEnvironmentVariable("SOFTHSM2_CONF") ?? "" });
        Assert.True(published.ExitCode == 0, published.AllOutput);
        Assert.Contains($"published '{witnesses.A.Operators[ns].Namespace}' epoch {epoch}", published.StandardOutput, StringComparison.Ordinal);
        return configFile;
    }

    private static async Task<GetFleetInfoResponse> WaitForAsync(TestDaemon daemon, Func<GetFleetInfoResponse, bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            var info = await daemon.CreateRawClient().GetFleetInfoAsync(new GetFleetInfoRequest());
            if (condition(info) || DateTime.UtcNow > deadline)
            {
                return condition(info) ? info : throw new TimeoutException($"the member still serves epoch {info.BundleEpoch}");
            }

            await Task.Delay(200);
        }
    }

    private static async Task WaitForLogAsync(TestDaemon daemon, int eventId)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!daemon.Logs.Events.Any(e => e.EventId.Id == eventId))
        {
            Assert.True(DateTime.UtcNow < deadline, $"event {eventId} was never logged");
            await Task.Delay(200);
        }
    }

    private FleetTrust Trust(int ns, int required, string? stateFile = null) =>
        new(new BundleTrustPolicy([witnesses.A.NoteKey, witnesses.B.NoteKey], required, [witnesses.A.Operators[ns].PublicKey]), stateFile);

    private static VaultClient Client(TestDaemon daemon, string user, FleetTrust trust)
    {
        var jwt = daemon.Setup.Mint(user);
        return new VaultClient(daemon.CreateChannel().CreateCallInvoker(), _ => ValueTask.FromResult(jwt), trust: trust);
    }

    /// <summary>A client whose GetValidationBundle reaches <paramref name="bundleFrom"/> and every other call <paramref name="rest"/>.</summary>
    private static VaultClient Routed(TestDaemon bundleFrom, TestDaemon rest, string user, FleetTrust trust, Interceptor? tamper = null)
    {
        var jwt = rest.Setup.Mint(user);
        CallInvoker others = rest.CreateChannel().CreateCallInvoker();
        if (tamper is not null)
        {
            others = others.Intercept(tamper);
        }

        return new VaultClient(new RoutingInvoker(bundleFrom.CreateChannel().CreateCallInvoker(), others), _ => ValueTask.FromResult(jwt), trust: trust);
    }

    private static Task<ProcessResult> CliAsync(TestDaemon daemon, string[] arguments) =>
        ChildProcesses.RunAsync(ChildProcesses.CliDll,
            [.. arguments, "--server", daemon.Address.ToString(), "--tenant", DaemonSetup.Tenant, "--tenant-key", daemon.Setup.TenantPrivateKeyFile]);

    private sealed class RoutingInvoker(CallInvoker bundles, CallInvoker others) : CallInvoker
    {
        private CallInvoker For<TRequest, TResponse>(Method<TRequest, TResponse> method) => method.Name == "GetValidationBundle" ? bundles : others;

        public override TResponse BlockingUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request) =>
            For(method).BlockingUnaryCall(method, host, options, request);

        public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request) =>
            For(method).AsyncUnaryCall(method, host, options, request);

        public override AsyncServerStreamingCall<TResponse> AsyncServerStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request) =>
            For(method).AsyncServerStreamingCall(method, host, options, request);

        public override AsyncClientStreamingCall<TRequest, TResponse> AsyncClientStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options) =>
            For(method).AsyncClientStreamingCall(method, host, options);

        public override AsyncDuplexStreamingCall<TRequest, TResponse> AsyncDuplexStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options) =>
            For(method).AsyncDuplexStreamingCall(method, host, options);
    }

    /// <summary>Fails the first call of <paramref name="method"/> with UNAVAILABLE, as a dropped connection would, before it reaches the member.</summary>
    private sealed class FailOnce(string method) : Interceptor
    {
        private int _failed;

        public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(
            TRequest request, ClientInterceptorContext<TRequest, TResponse> context, AsyncUnaryCallContinuation<TRequest, TResponse> continuation)
        {
            if (context.Method.Name == method && Interlocked.Exchange(ref _failed, 1) == 0)
            {
                throw new RpcException(new Status(StatusCode.Unavailable, "connection dropped by the test"));
            }

            return continuation(request, context);
        }
    }

    private sealed class ShiftedTime(TimeSpan offset) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + offset;
    }

    /// <summary>Puts <paramref name="key"/> into every RegistrationResponse in place of the server's own key.</summary>
    private sealed class SwapRegistrationKey(ByteString key) : Interceptor
    {
        public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(
            TRequest request, ClientInterceptorContext<TRequest, TResponse> context, AsyncUnaryCallContinuation<TRequest, TResponse> continuation)
        {
            var call = continuation(request, context);
            return new AsyncUnaryCall<TResponse>(Swap(call.ResponseAsync), call.ResponseHeadersAsync, call.GetStatus, call.GetTrailers, call.Dispose);
        }

        private async Task<TResponse> Swap<TResponse>(Task<TResponse> response)
        {
            var answer = await response;
            if (answer is StartRegistrationResponse started)
            {
                started.RegistrationResponse = ByteString.CopyFrom([.. started.RegistrationResponse.Span[..32], .. key.Span]);
            }

            return answer;
        }
    }
}
