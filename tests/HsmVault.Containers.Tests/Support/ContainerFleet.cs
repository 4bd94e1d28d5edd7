using System.Globalization;
using System.Security.Cryptography;
using DotNet.Testcontainers.Builders;
using DotNet.Testcontainers.Networks;
using DotNet.Testcontainers.Volumes;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Grpc.Health.V1;
using HsmVault.Cli.Commands;
using HsmVault.Client;
using HsmVault.Protocol.V1;
using ProtoVault = HsmVault.Protocol.V1.Vault;

namespace HsmVault.Containers.Tests.Support;

/// <summary>
/// A fleet of hsmvaultd containers from the image, made as <c>make run-containers</c> makes one:
/// a network of its own, three volumes per member (token, data, configuration), the key ceremony
/// in a one-shot container of the same image (<c>provision-fleet</c>), then one container per
/// member reachable from here only through the client port Docker maps on 127.0.0.1.
/// </summary>
/// <remarks>
/// Everything carries <see cref="DockerEngine.Label"/> and this fleet's own label, and
/// <see cref="DisposeAsync"/> removes it all by that label, whatever state a failed test left
/// it in (paused, disconnected, killed).
/// </remarks>
public sealed class ContainerFleet : IAsyncDisposable
{
    /// <summary>The fleet id (the audience of users' JWTs).</summary>
    public const string FleetId = "container-fleet";

    /// <summary>The development tenant that provisioning makes.</summary>
    public const string Tenant = "dev-tenant";

    /// <summary>Deadline of a call to a member that is expected to answer.</summary>
    public static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(60);

    private readonly DockerEngine _engine;
    private readonly string _prefix;
    private readonly string _fleetLabel;
    private readonly List<ContainerMember> _members = [];
    private readonly List<IVolume> _volumes = [];
    private INetwork? _network;
    private ECDsa? _tenantKey;

    private ContainerFleet(DockerEngine engine)
    {
        _engine = engine;
        var id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));
        _prefix = $"hsmvault-ct-{id}";
        _fleetLabel = $"hsmvault.fleet={id}";
    }

    /// <summary>The members, member-1 first.</summary>
    public IReadOnlyList<ContainerMember> Members => _members;

    /// <summary>Member <paramref name="index"/> (0-based).</summary>
    public ContainerMember this[int index] => _members[index];

    /// <summary>The members a client can reach now.</summary>
    public IReadOnlyList<ContainerMember> Reachable => [.. _members.Where(m => m.IsReachable)];

    /// <summary>Provisions a fleet of <paramref name="count"/> and starts it; waits until every member serves.</summary>
    public static async Task<ContainerFleet> StartAsync(DockerEngine engine, int count = 3)
    {
        ArgumentNullException.ThrowIfNull(engine);
        var fleet = new ContainerFleet(engine);
        try
        {
            await fleet.ProvisionAsync(count);
            await Task.WhenAll(fleet._members.Select(m => m.StartAsync()));
            await fleet.SettledAsync();
            return fleet;
        }
        catch
        {
            await fleet.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Waits until every reachable member answers SERVING on the gRPC health service (it knows a
    /// leader and is not behind its high-water mark) and one of them is the leader; returns it.
    /// </summary>
    public Task<ContainerMember> SettledAsync() => Poll.UntilAsync(async () =>
    {
        foreach (var member in Reachable)
        {
            if (!await IsServingAsync(member))
            {
                return null;
            }
        }

        return await CurrentLeaderAsync();
    }, "every reachable member to serve, under a reachable leader");

    /// <summary>
    /// The reachable member that most recently won an election, if no reachable member has seen
    /// a later term (then that election's leader is not known yet).
    /// </summary>
    public async Task<ContainerMember?> CurrentLeaderAsync()
    {
        var terms = new List<(ContainerMember Member, long Led, long Highest)>();
        foreach (var member in Reachable)
        {
            var (led, highest) = await member.TermsAsync();
            terms.Add((member, led, highest));
        }

        var latest = terms.Count == 0 ? 0 : terms.Max(t => t.Highest);
        return terms.Where(t => t.Led > 0 && t.Led == latest).Select(t => t.Member).FirstOrDefault();
    }

    /// <summary>Whether <paramref name="member"/>'s health service answers SERVING.</summary>
    public static async Task<bool> IsServingAsync(ContainerMember member)
    {
        ArgumentNullException.ThrowIfNull(member);
        try
        {
            var health = await new Health.HealthClient(member.Channel()).CheckAsync(
                new HealthCheckRequest(), deadline: DateTime.UtcNow + TimeSpan.FromSeconds(10));
            return health.Status == HealthCheckResponse.Types.ServingStatus.Serving;
        }
        catch (RpcException)
        {
            return false;
        }
    }

    /// <summary>The client library against <paramref name="member"/> as <paramref name="user"/>, through <paramref name="interceptor"/> if given.</summary>
    public VaultClient Client(ContainerMember member, string user, Interceptor? interceptor = null)
    {
        ArgumentNullException.ThrowIfNull(member);
        var jwt = Jwt(user);
        var invoker = member.Channel().CreateCallInvoker();
        return new VaultClient(interceptor is null ? invoker : invoker.Intercept(interceptor), _ => ValueTask.FromResult(jwt));
    }

    /// <summary>A JWT for <paramref name="user"/>, signed with the tenant key the ceremony made.</summary>
    public string Jwt(string user) =>
        DevelopmentTokens.Mint(_tenantKey ?? throw new InvalidOperationException("not provisioned"), Tenant, user, FleetId, TimeSpan.FromHours(1));

    /// <summary>Registers <paramref name="user"/> through <paramref name="member"/>, retrying while the fleet is between leaders.</summary>
    public async Task RegisterAsync(ContainerMember member, string user, byte[] password, int guessLimit)
    {
        var refused = false;
        for (var attempt = 0; ; attempt++)
        {
            using var timeout = new CancellationTokenSource(CallTimeout);
            try
            {
                var result = await Client(member, user).RegisterAsync(password, BackupKeys.NewKey(), guessLimit, cancellationToken: timeout.Token);
                Assert.Equal(guessLimit, result.GuessLimit);
                return;
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Unavailable && attempt < 4)
            {
                refused = true;
                await SettledAsync();
            }
            catch (RpcException e) when (refused && VaultClient.ReasonOf(e) == RefusalReason.AlreadyRegistered)
            {
                // An attempt refused as Unavailable did take effect after all.
                return;
            }
        }
    }

    /// <summary>Status of <paramref name="user"/> as <paramref name="member"/> answers it, within <paramref name="deadline"/>.</summary>
    public async Task<GetStatusResponse> StatusAsync(ContainerMember member, string user, TimeSpan? deadline = null)
    {
        ArgumentNullException.ThrowIfNull(member);
        return await new ProtoVault.VaultClient(member.Channel()).GetStatusAsync(
            new GetStatusRequest(),
            new Metadata { { "authorization", "Bearer " + Jwt(user) } },
            DateTime.UtcNow + (deadline ?? CallTimeout));
    }

    /// <summary>Polls until every reachable member answers the same status for <paramref name="user"/>.</summary>
    public Task<GetStatusResponse> ConvergedStatusAsync(string user) => Poll.UntilAsync(async () =>
    {
        var answers = new List<GetStatusResponse>();
        foreach (var member in Reachable)
        {
            try
            {
                answers.Add(await StatusAsync(member, user));
            }
            catch (RpcException)
            {
                return null;
            }
        }

        return answers.Count > 0 && answers.All(a => a.Equals(answers[0])) ? answers[0] : null;
    }, $"every reachable member to answer the same status for {user}");

    /// <summary>
    /// Sends wrong passwords for <paramref name="user"/> round-robin over the reachable members
    /// until the record is destroyed (at most <paramref name="maxAttempts"/>); an attempt that
    /// gets no answer (the fleet between leaders) is counted as unknown, and the fleet is let settle.
    /// </summary>
    public async Task<GuessTally> GuessUntilDestroyedAsync(string user, byte[] wrongPassword, int maxAttempts = 40)
    {
        var tally = new GuessTally();
        for (var attempt = 0; attempt < maxAttempts && !tally.Destroyed; attempt++)
        {
            var reachable = Reachable;
            var member = reachable[attempt % reachable.Count];
            using var timeout = new CancellationTokenSource(CallTimeout);
            try
            {
                var result = await Client(member, user).RecoverAsync(wrongPassword, timeout.Token);
                switch (result.Status)
                {
                    case RecoveryStatus.WrongPassword:
                        tally.Remaining.Add(result.GuessesRemaining);
                        break;
                    case RecoveryStatus.RecordDestroyed:
                        tally.Destroyed = true;
                        break;
                    default:
                        throw new InvalidOperationException($"a wrong password was answered {result.Status}");
                }
            }
            catch (RpcException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded or StatusCode.Cancelled)
            {
                tally.Unknown++;
                await SettledAsync();
            }
        }

        return tally;
    }

    /// <summary>
    /// The guess limit held: <paramref name="remainingBefore"/> guesses were left, and the record
    /// was destroyed after exactly that many charged attempts, none refunded, none counted twice;
    /// then every reachable member says so, and the right password no longer works anywhere.
    /// </summary>
    public async Task AssertDestroyedAfterAsync(GuessTally tally, int remainingBefore, string user, byte[] rightPassword)
    {
        ArgumentNullException.ThrowIfNull(tally);
        Assert.True(tally.Destroyed, $"the record survived: {tally}");
        // Answers count down one by one; an unanswered attempt may explain a skipped count (it
        // was charged) but no extra answer.
        Assert.Equal(tally.Remaining.OrderDescending(), tally.Remaining);
        Assert.Equal(tally.Remaining.Count, tally.Remaining.Distinct().Count());
        Assert.All(tally.Remaining, r => Assert.InRange(r, 1, remainingBefore - 1));
        Assert.True(tally.Remaining.Count + 1 <= remainingBefore, $"more answers than guesses left: {tally}");
        Assert.True(tally.Remaining.Count + 1 + tally.Unknown >= remainingBefore, $"destroyed before its guesses were used: {tally}");
        if (tally.Unknown == 0)
        {
            Assert.Equal(Enumerable.Range(1, remainingBefore - 1).Reverse(), tally.Remaining);
        }

        var status = await ConvergedStatusAsync(user);
        Assert.True(status.Destroyed, $"status after destruction: {status}");
        Assert.False(status.Registered);
        foreach (var member in Reachable)
        {
            using var timeout = new CancellationTokenSource(CallTimeout);
            var result = await Client(member, user).RecoverAsync(rightPassword, timeout.Token);
            Assert.Equal(RecoveryStatus.RecordDestroyed, result.Status);
            Assert.Null(result.BackupKey);
        }
    }

    /// <summary>
    /// Fails if any member logged an Error or Critical event (the console formatter's
    /// <c>fail:</c> and <c>crit:</c>): faults from outside must be met with warnings and refusals, not errors.
    /// </summary>
    /// <param name="tolerated">
    /// Texts of errors the test caused itself and that a library, not HsmVault, logs (each named at its call).
    /// </param>
    public async Task AssertNoErrorLogsAsync(params string[] tolerated)
    {
        var errors = new List<string>();
        foreach (var member in _members)
        {
            var lines = (await member.LogsAsync()).Split('\n');
            for (var i = 0; i < lines.Length; i++)
            {
                if (lines[i].StartsWith("fail:", StringComparison.Ordinal) || lines[i].StartsWith("crit:", StringComparison.Ordinal))
                {
                    // The simple console formatter puts the message on the next line and an exception's type and
                    // message on the one after it.
                    var detail = string.Join(' ', lines.Skip(i + 1).Take(2).Select(line => line.Trim()));
                    if (!tolerated.Any(text => detail.Contains(text, StringComparison.Ordinal)))
                    {
                        errors.Add($"{member.Id}: {lines[i]} {detail}");
                    }
                }
            }
        }

        Assert.True(errors.Count == 0, "error logs:\n" + string.Join('\n', errors));
    }

    /// <summary>A new empty volume of this fleet (e.g. for a copy of a member's data).</summary>
    public async Task<string> NewVolumeAsync(string purpose)
    {
        var volume = new VolumeBuilder().WithName($"{_prefix}-{purpose}")
            .WithLabel(Key(DockerEngine.Label), Value(DockerEngine.Label)).WithLabel(Key(_fleetLabel), Value(_fleetLabel))
            .WithCleanUp(true).Build();
        await volume.CreateAsync();
        _volumes.Add(volume);
        return volume.Name;
    }

    /// <summary>Replaces the contents of volume <paramref name="to"/> with those of <paramref name="from"/> (owners and modes kept).</summary>
    public Task CopyVolumeAsync(string from, string to) => RunOneShotAsync(
        ["--mount", $"type=volume,src={from},dst=/from,readonly", "--mount", $"type=volume,src={to},dst=/to"],
        "bash", "-c", "find /to -mindepth 1 -delete && cp -a /from/. /to/");

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        foreach (var member in _members)
        {
            try
            {
                await member.DisposeAsync();
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // A paused or disconnected container may refuse a clean stop; the sweep below removes it.
            }
        }

        // By label: whatever the fleet made, in whatever state a failed test left it.
        await DockerCli.RemoveLabelledAsync(_fleetLabel);
        _tenantKey?.Dispose();
    }

    private async Task ProvisionAsync(int count)
    {
        _network = new NetworkBuilder().WithName(_prefix)
            .WithLabel(Key(DockerEngine.Label), Value(DockerEngine.Label)).WithLabel(Key(_fleetLabel), Value(_fleetLabel))
            .WithCleanUp(true).Build();
        await _network.CreateAsync();

        var client = await NewVolumeAsync("client");
        var mounts = new List<string> { "--mount", $"type=volume,src={client},dst=/provision/client" };
        var volumes = new List<(string Token, string Data, string Config)>();
        for (var i = 1; i <= count; i++)
        {
            var set = (await NewVolumeAsync($"member-{i}-token"), await NewVolumeAsync($"member-{i}-data"), await NewVolumeAsync($"member-{i}-config"));
            volumes.Add(set);
            mounts.AddRange(["--mount", $"type=volume,src={set.Item1},dst=/provision/member-{i}/token"]);
            mounts.AddRange(["--mount", $"type=volume,src={set.Item3},dst=/provision/member-{i}/config"]);
        }

        // The ceremony needs no network, and runs as root only to give the volumes to the daemon's user.
        await RunOneShotAsync([.. mounts], "provision-fleet", count.ToString(CultureInfo.InvariantCulture), FleetId);
        var pem = await RunOneShotAsync(["--mount", $"type=volume,src={client},dst=/client,readonly"], "cat", "/client/dev-tenant.key.pem");
        _tenantKey = ECDsa.Create();
        _tenantKey.ImportFromPem(pem);

        for (var i = 1; i <= count; i++)
        {
            var id = $"member-{i}";
            var (token, data, config) = volumes[i - 1];
            var container = new ContainerBuilder(_engine.Image)
                .WithName($"{_prefix}-{id}")
                .WithLabel(Key(DockerEngine.Label), Value(DockerEngine.Label)).WithLabel(Key(_fleetLabel), Value(_fleetLabel))
                .WithNetwork(_network)
                .WithNetworkAliases(id)
                .WithVolumeMount(token, "/var/lib/hsmvault/token")
                .WithVolumeMount(data, "/var/lib/hsmvault/data")
                .WithVolumeMount(config, "/etc/hsmvault")
                .WithTmpfsMount("/tmp")
                .WithPortBinding(ContainerMember.ClientPort, assignRandomHostPort: true)
                // A cheap KSF for the clients (published by GetFleetInfo): the tests make many
                // recoveries, and Argon2id's RFC 9106 defaults cost a client 64 MiB and seconds here.
                .WithEnvironment("HSMVAULT_HsmVault__Argon2MemoryKib", "1024")
                .WithEnvironment("HSMVAULT_HsmVault__Argon2Iterations", "1")
                .WithEnvironment("HSMVAULT_HsmVault__Argon2Parallelism", "2")
                .WithCreateParameterModifier(parameters =>
                {
                    var host = parameters.HostConfig ?? throw new InvalidOperationException("Testcontainers made no host configuration");
                    host.ReadonlyRootfs = true;
                    // Published on loopback only: nothing off this machine can reach a member.
                    foreach (var bindings in host.PortBindings?.Values ?? [])
                    {
                        foreach (var binding in bindings ?? [])
                        {
                            binding.HostIP = "127.0.0.1";
                        }
                    }
                })
                .WithCleanUp(true)
                .Build();
            _members.Add(new ContainerMember(id, container, _network.Name, token, data, config));
        }
    }

    private async Task<string> RunOneShotAsync(string[] mounts, params string[] command) =>
        await DockerCli.RunAsync([
            "run", "--rm", "--user", "0", "--network", "none",
            "--label", DockerEngine.Label, "--label", _fleetLabel,
            .. mounts, _engine.Image, .. command]);

    private static string Key(string label) => label[..label.IndexOf('=', StringComparison.Ordinal)];

    private static string Value(string label) => label[(label.IndexOf('=', StringComparison.Ordinal) + 1)..];
}

/// <summary>What a run of wrong guesses got: the counts answered, the unanswered attempts, whether the record went.</summary>
public sealed class GuessTally
{
    /// <summary>Guesses remaining, as each wrong answer said.</summary>
    public List<int> Remaining { get; } = [];

    /// <summary>Attempts that got no answer (the member was cut off or the fleet between leaders).</summary>
    public int Unknown { get; set; }

    /// <summary>Whether the record was destroyed.</summary>
    public bool Destroyed { get; set; }

    /// <inheritdoc/>
    public override string ToString() => $"answers [{string.Join(", ", Remaining)}], {Unknown} unanswered, destroyed: {Destroyed}";
}
