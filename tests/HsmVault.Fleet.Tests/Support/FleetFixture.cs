using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;
using HsmVault.Cli.Commands;
using HsmVault.Client;
using HsmVault.Hsm;
using HsmVault.Testing;
using HsmVault.Testing.Opaque;
using Microsoft.Extensions.Logging;
using ProtoVault = HsmVault.Protocol.V1.Vault;
using RefusalReason = HsmVault.Protocol.V1.RefusalReason;

using HsmVault.Testing.Daemons;

namespace HsmVault.Fleet.Tests.Support;

/// <summary>Settings of a <see cref="FleetFixture"/>.</summary>
public sealed class FleetSettings
{
    /// <summary>How many members (3 or 5).</summary>
    public int Members { get; init; } = 3;

    /// <summary>How the members run.</summary>
    public MemberHosting Hosting { get; init; } = MemberHosting.InProcess;

    /// <summary>Applied entries between snapshots.</summary>
    public int SnapshotEveryEntries { get; init; } = 1000;

    /// <summary>Whether to start the members (else the test starts them).</summary>
    public bool Start { get; init; } = true;

    /// <summary>
    /// Makes member <c>i</c>'s (0-based) fresh, empty token, e.g. of another PKCS#11
    /// implementation; null for SoftHSM2 tokens.
    /// </summary>
    public Func<int, TokenOptions>? CreateToken { get; init; }
}

/// <summary>
/// A fleet of real hsmvaultd members on 127.0.0.1, made as an operator would: a SoftHSM2 token
/// per member, the fleet keys generated in member 1's token and copied to the others by the key
/// ceremony (wrapped under ECDH-derived keys) with the sealed OPAQUE server key, then locked;
/// mutual-TLS peer certificates from a fleet peer CA; a tenant whose key signs the users' JWTs;
/// per member a data folder, two fixed ports and a configuration with fast Raft timing.
/// </summary>
/// <remarks>
/// The members run in this process (stop, start, partition through <see cref="LinkCuts"/>)
/// or as child processes (kill -9, restart). Each test makes its own fleet: the tokens hold the
/// members' high-water marks, so a fleet's tokens cannot be reused with fresh data folders.
/// </remarks>
public sealed class FleetFixture : IAsyncDisposable
{
    /// <summary>The fleet id: the audience of every JWT and the organization of peer certificates.</summary>
    public const string FleetId = "fleet-tests";

    /// <summary>The tenant (JWT issuer).</summary>
    public const string Tenant = "fleet-tenant";

    /// <summary>Deadline of every call a test makes: generous, only there so that no call can hang a test.</summary>
    public static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(60);

    private readonly ConcurrentDictionary<string, GrpcChannel> _channels = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string> _jwts = new(StringComparer.Ordinal);
    private readonly List<FleetMember> _members = [];
    private readonly LinkCuts _cuts = new();
    private readonly List<Func<CapturedLog, bool>> _expectedErrors = [];

    private FleetFixture(string workDirectory)
    {
        WorkDirectory = workDirectory;
        TenantKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        TenantPublicKeyFile = Path.Combine(workDirectory, "tenant.pub.pem");
        File.WriteAllText(TenantPublicKeyFile, TenantKey.ExportSubjectPublicKeyInfoPem());
        CertificateDirectory = Path.Combine(workDirectory, "peer-tls");
    }

    /// <summary>The fleet's temporary folder.</summary>
    public string WorkDirectory { get; }

    /// <summary>Where the peer CA and the members' certificates are.</summary>
    public string CertificateDirectory { get; }

    /// <summary>The tenant's signing key.</summary>
    public ECDsa TenantKey { get; }

    /// <summary>The tenant's public key, trusted by every member.</summary>
    public string TenantPublicKeyFile { get; }

    /// <summary>The members, in configuration order (member-1 first).</summary>
    public IReadOnlyList<FleetMember> Members => _members;

    /// <summary>The member <paramref name="index"/> (0-based).</summary>
    public FleetMember this[int index] => _members[index];

    /// <summary>The members that are running.</summary>
    public IReadOnlyList<FleetMember> Running => [.. _members.Where(m => m.IsRunning)];

    /// <summary>Makes the tokens, keys, certificates and configurations; starts the members unless told not to.</summary>
    public static async Task<FleetFixture> CreateAsync(FleetSettings? settings = null)
    {
        settings ??= new FleetSettings();
        var fleet = new FleetFixture(Directory.CreateTempSubdirectory("hsmvault-fleet-").FullName);
        try
        {
            fleet.Provision(settings);
            if (settings.Start)
            {
                await fleet.StartAllAsync();
            }

            return fleet;
        }
        catch
        {
            await fleet.DisposeAsync();
            throw;
        }
    }

    /// <summary>Starts every member that is not running, all at once, and waits until they all follow one leader.</summary>
    public async Task StartAllAsync()
    {
        await Task.WhenAll(_members.Where(m => !m.IsRunning).Select(m => m.StartAsync()));
        await SettledAsync();
    }

    /// <summary>
    /// Waits until every running member knows the same leader in the same term, and that leader
    /// is running; returns it.
    /// </summary>
    /// <remarks>
    /// In this process the members' Raft status says so directly. A child process logs a leader
    /// change only sometimes (a leader that steps down to follow another logs just that it stepped
    /// down), so there every running member must instead report SERVING on the gRPC health
    /// service, which it does only while it knows a leader and is not behind its high-water mark.
    /// </remarks>
    public Task<FleetMember> SettledAsync() => Poll.UntilAsync(async () =>
    {
        var leader = CurrentLeader();
        if (leader is null)
        {
            return null;
        }

        if (leader.Hosting == MemberHosting.InProcess)
        {
            var views = Running.Select(m => m.View()).ToList();
            return views.All(v => v is not null && v.LeaderId == leader.Id && v.Term == views[0]!.Term) ? leader : null;
        }

        foreach (var member in Running)
        {
            if (!await IsServingAsync(member))
            {
                return null;
            }
        }

        return leader;
    }, "every running member to follow one running leader");

    /// <summary>Whether <paramref name="member"/>'s gRPC health service answers SERVING.</summary>
    public async Task<bool> IsServingAsync(FleetMember member)
    {
        try
        {
            var health = await new Health.HealthClient(Channel(member)).CheckAsync(new HealthCheckRequest(), deadline: DateTime.UtcNow + CallTimeout);
            return health.Status == HealthCheckResponse.Types.ServingStatus.Serving;
        }
        catch (RpcException)
        {
            return false;
        }
    }

    /// <summary>
    /// The leader a majority of the running members agree on (in-process: by their Raft status;
    /// child processes: the running member that most recently announced leadership, in the
    /// highest term). Waits for one.
    /// </summary>
    public Task<FleetMember> LeaderAsync(TimeSpan? timeout = null) => Poll.UntilAsync(() => Task.FromResult(CurrentLeader()), "a leader", timeout);

    /// <summary>The agreed leader now, or null.</summary>
    public FleetMember? CurrentLeader()
    {
        var running = Running;
        var views = running.Select(m => (Member: m, View: m.View())).Where(v => v.View is not null).ToList();
        var candidates = views.Where(v => v.View!.LeaderId == v.Member.Id).OrderByDescending(v => v.View!.Term).ToList();
        foreach (var (member, view) in candidates)
        {
            if (views.Any(v => v.View!.Term > view!.Term && v.View.LeaderId is not null))
            {
                continue;
            }

            if (member.Hosting == MemberHosting.ChildProcess)
            {
                return member;
            }

            var agreeing = views.Count(v => v.View!.Term == view!.Term && v.View.LeaderId == member.Id);
            if (agreeing > _members.Count / 2)
            {
                return member;
            }
        }

        return null;
    }

    /// <summary>The running members other than <paramref name="member"/>.</summary>
    public IReadOnlyList<FleetMember> Others(FleetMember member) => [.. Running.Where(m => m != member)];

    /// <summary>
    /// Cuts every link between <paramref name="member"/> and the others, both ways, until <see cref="Heal"/> (a
    /// restart does not mend it). Only in-process members drop traffic over a cut link, so no child process may run.
    /// </summary>
    public void Partition(FleetMember member)
    {
        ArgumentNullException.ThrowIfNull(member);
        if (Running.FirstOrDefault(m => m.Hosting != MemberHosting.InProcess) is { } child)
        {
            throw new InvalidOperationException($"{child} runs as a child process, which a partition cannot reach");
        }

        foreach (var other in _members.Where(m => m != member))
        {
            _cuts.Cut(member.Id, other.Id);
        }
    }

    /// <summary>Mends every link.</summary>
    public void Heal() => _cuts.HealAll();

    /// <summary>A JWT for <paramref name="user"/> of the tenant (minted once per fleet).</summary>
    public string Jwt(string user) =>
        _jwts.GetOrAdd(user, u => DevelopmentTokens.Mint(TenantKey, Tenant, u, FleetId, TimeSpan.FromHours(1)));

    /// <summary>gRPC metadata carrying <paramref name="user"/>'s JWT.</summary>
    public Metadata Headers(string user) => new() { { "authorization", "Bearer " + Jwt(user) } };

    /// <summary>The channel to <paramref name="member"/>'s client endpoint (one per member, reused across its restarts).</summary>
    public GrpcChannel Channel(FleetMember member)
    {
        ArgumentNullException.ThrowIfNull(member);
        return _channels.GetOrAdd(member.Id, _ => GrpcChannel.ForAddress(member.ClientAddress));
    }

    /// <summary>The client library against <paramref name="member"/>, as <paramref name="user"/>.</summary>
    public VaultClient Client(FleetMember member, string user)
    {
        var jwt = Jwt(user);
        return new VaultClient(Channel(member).CreateCallInvoker(), _ => ValueTask.FromResult(jwt));
    }

    /// <summary>
    /// Set-up: registers <paramref name="user"/> through the client library, retrying while the
    /// fleet refuses with Unavailable (e.g. just after an election), as a client would.
    /// </summary>
    public async Task<RegisterResult> RegisterAsync(FleetMember member, string user, byte[] password, byte[] backupKey, int guessLimit)
    {
        var failures = new List<string>();
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                return await Client(member, user).RegisterAsync(password, backupKey, guessLimit);
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Unavailable && attempt < 4)
            {
                failures.Add(e.Status.ToString());
                await LeaderAsync();
                await Task.Delay(200);
            }
            catch (RpcException e) when (failures.Count > 0 && VaultClient.ReasonOf(e) == RefusalReason.AlreadyRegistered)
            {
                // An earlier attempt that was refused as Unavailable did take effect after all.
                return new RegisterResult(guessLimit, Replaced: false);
            }
        }
    }

    /// <summary>The generated gRPC client against <paramref name="member"/>; add <see cref="Headers"/> to calls.</summary>
    public ProtoVault.VaultClient RawClient(FleetMember member) => new(Channel(member));

    /// <summary>Status of <paramref name="user"/> as <paramref name="member"/> answers it.</summary>
    public async Task<Protocol.V1.GetStatusResponse> StatusAsync(FleetMember member, string user) =>
        await RawClient(member).GetStatusAsync(new Protocol.V1.GetStatusRequest(), Headers(user), DateTime.UtcNow + CallTimeout);

    /// <summary>
    /// Polls until every running member answers the same status for each of <paramref name="users"/>
    /// and returns it; refusals (a member still catching up) are retried.
    /// </summary>
    public async Task<IReadOnlyDictionary<string, Protocol.V1.GetStatusResponse>> ConvergedStatusAsync(params string[] users)
    {
        ArgumentNullException.ThrowIfNull(users);
        return await Poll.UntilAsync<IReadOnlyDictionary<string, Protocol.V1.GetStatusResponse>>(async () =>
        {
            var result = new Dictionary<string, Protocol.V1.GetStatusResponse>(StringComparer.Ordinal);
            foreach (var user in users)
            {
                var answers = new List<Protocol.V1.GetStatusResponse>();
                foreach (var member in Running)
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

                if (answers.Count == 0 || answers.Any(a => !a.Equals(answers[0])))
                {
                    return null;
                }

                result[user] = answers[0];
            }

            return result;
        }, $"every running member to answer the same status for {string.Join(", ", users)}");
    }

    /// <summary>Lets error-level events matching <paramref name="predicate"/> pass <see cref="AssertNoUnexpectedErrors"/>.</summary>
    public void ExpectErrors(Func<CapturedLog, bool> predicate) => _expectedErrors.Add(predicate);

    /// <summary>Fails if an in-process member logged an unexpected Error or Critical event.</summary>
    public void AssertNoUnexpectedErrors()
    {
        var errors = _members.SelectMany(m => m.Logs.Events.Select(e => (Member: m, Event: e)))
            .Where(e => e.Event.Level >= LogLevel.Error && !_expectedErrors.Any(p => p(e.Event)))
            .ToList();
        Assert.True(errors.Count == 0, "unexpected error logs:\n" + string.Join('\n', errors.Select(e => $"{e.Member.Id}: {e.Event}")));
    }

    /// <summary>Every member's logs, for failure messages.</summary>
    public string AllLogs() => string.Join("\n\n", _members.Select(m => $"=== {m.Id}\n{m.AllLogs}"));

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        await Task.WhenAll(_members.Select(m => m.DisposeAsync().AsTask()));
        foreach (var channel in _channels.Values)
        {
            channel.Dispose();
        }

        TenantKey.Dispose();
        try
        {
            Directory.Delete(WorkDirectory, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a leftover temp folder is harmless.
        }
    }

    /// <summary>Settings shared by every member; member-specific keys are added by <see cref="Provision"/>.</summary>
    public Dictionary<string, string?> CommonSettings(FleetSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var common = new Dictionary<string, string?>(StringComparer.Ordinal)
        {
            ["HsmVault:FleetId"] = FleetId,
            ["HsmVault:Auth:Tenants:0:Issuer"] = Tenant,
            ["HsmVault:Auth:Tenants:0:PublicKeyFile"] = TenantPublicKeyFile,
            ["HsmVault:Peer:CaFile"] = Path.Combine(CertificateDirectory, "peer-ca.pem"),
            ["HsmVault:Peer:TickInterval"] = "00:00:00.020",
            ["HsmVault:Peer:ElectionTicks"] = "10",
            ["HsmVault:Peer:CommitTimeout"] = "00:00:03",
            ["HsmVault:Peer:SnapshotEveryEntries"] = settings.SnapshotEveryEntries.ToString(CultureInfo.InvariantCulture),
        };
        TestOpaqueSettings.AddTo(common);
        for (var i = 0; i < _members.Count; i++)
        {
            common[$"HsmVault:Peer:Members:{i}:Id"] = _members[i].Id;
            common[$"HsmVault:Peer:Members:{i}:PeerAddress"] = _members[i].PeerAddress.ToString().TrimEnd('/');
        }

        return common;
    }

    private void Provision(FleetSettings settings)
    {
        var ids = Enumerable.Range(1, settings.Members).Select(i => $"member-{i}").ToList();
        var tokens = ids.Select((_, i) => settings.CreateToken?.Invoke(i) ?? SoftHsmEnvironment.Shared.CreateToken()).ToList();

        // The ceremony, as `hsmvault fleet init` runs it (TokenCommands.InitFleet).
        TokenProvisioner.ProvisionFleetKeys(tokens[0], new FleetKeyGenerationOptions { ExtractableForCeremony = true });
        byte[] sealedAkeKey;
        using (var origin = Pkcs11VaultToken.Open(tokens[0]))
        {
            FleetKeys.CreateAkeKey(origin);
            sealedAkeKey = origin.ReadDataObject(FleetKeys.AkePrivateKeyObject)!;
        }

        foreach (var target in tokens.Skip(1))
        {
            FleetCeremony.CopyFleetKeys(tokens[0], target);
            using var token = Pkcs11VaultToken.Open(target);
            token.WriteDataObject(FleetKeys.AkePrivateKeyObject, sealedAkeKey);
        }

        FleetCeremony.LockFleetKeys(tokens[0]);
        PeerCertificateAuthority.Issue(CertificateDirectory, FleetId, ids, TimeSpan.FromDays(1));

        var ports = FreePorts(2 * ids.Count);
        for (var i = 0; i < ids.Count; i++)
        {
            var directory = Path.Combine(WorkDirectory, ids[i]);
            Directory.CreateDirectory(directory);
            _members.Add(new FleetMember(ids[i], tokens[i], directory, ports[2 * i], ports[(2 * i) + 1], settings.Hosting, _cuts));
        }

        var common = CommonSettings(settings);
        foreach (var member in _members)
        {
            foreach (var (key, value) in common)
            {
                member.Settings[key] = value;
            }

            member.Settings["HsmVault:MemberId"] = member.Id;
            member.Settings["HsmVault:DataDirectory"] = member.DataDirectory;
            member.Settings["HsmVault:Token:ModulePath"] = member.Token.ModulePath;
            member.Settings["HsmVault:Token:TokenLabel"] = member.Token.TokenLabel;
            member.Settings["HsmVault:Token:PinFile"] = member.Token.PinFile;
            member.Settings["HsmVault:Token:MaxConcurrentOperations"] = member.Token.MaxConcurrentOperations.ToString(CultureInfo.InvariantCulture);
            member.Settings["HsmVault:Token:KeyLabelPrefix"] = member.Token.KeyLabelPrefix;
            if (member.Token.ModuleInitArgs is not null)
            {
                member.Settings["HsmVault:Token:ModuleInitArgs"] = member.Token.ModuleInitArgs;
            }
            member.Settings["HsmVault:Peer:CertificateFile"] = Path.Combine(CertificateDirectory, $"{member.Id}.peer.pem");
            member.Settings["HsmVault:Peer:KeyFile"] = Path.Combine(CertificateDirectory, $"{member.Id}.peer.key.pem");
            member.Settings["Kestrel:Endpoints:Grpc:Url"] = member.ClientAddress.ToString().TrimEnd('/');
        }
    }

    /// <summary>Distinct free loopback ports: bound to port 0 together, read back, then released.</summary>
    private static List<int> FreePorts(int count)
    {
        var listeners = Enumerable.Range(0, count).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToList();
        try
        {
            foreach (var listener in listeners)
            {
                listener.Start();
            }

            return [.. listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port)];
        }
        finally
        {
            foreach (var listener in listeners)
            {
                listener.Stop();
            }
        }
    }
}
