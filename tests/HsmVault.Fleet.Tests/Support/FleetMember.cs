using System.Globalization;
using System.Text.RegularExpressions;
using HsmVault.Consensus;
using HsmVault.Hsm;
using HsmVault.Server.Peering;
using Microsoft.Extensions.DependencyInjection;

using HsmVault.Testing.Daemons;

namespace HsmVault.Fleet.Tests.Support;

/// <summary>How a member's daemon runs.</summary>
public enum MemberHosting
{
    /// <summary>In this process (an <see cref="InProcessHost"/>): stopped cleanly, partitioned by the fixture's <see cref="LinkCuts"/>.</summary>
    InProcess,

    /// <summary>As a <c>hsmvaultd</c> child process: stopped by kill -9.</summary>
    ChildProcess,
}

/// <summary>What a member believes about leadership: its term and the leader it knows (null: none).</summary>
/// <param name="Term">The member's current term.</param>
/// <param name="LeaderId">The leader it knows of, itself included.</param>
public sealed record LeaderView(ulong Term, string? LeaderId);

/// <summary>
/// One member of a <see cref="FleetFixture"/>: its token, data folder, ports and configuration,
/// and the daemon running over them, in this process or as a child process. Ports, token and
/// folder stay the same across restarts, so a restarted member is the same member.
/// </summary>
public sealed partial class FleetMember : IAsyncDisposable
{
    private readonly Lock _lock = new();
    private readonly List<string> _childLines = [];
    private readonly LinkCuts _cuts;
    private InProcessHost? _host;
    private ChildDaemon? _child;
    private LeaderView? _childView;

    internal FleetMember(string id, TokenOptions token, string workDirectory, int clientPort, int peerPort, MemberHosting hosting, LinkCuts cuts)
    {
        _cuts = cuts;
        Id = id;
        Token = token;
        WorkDirectory = workDirectory;
        DataDirectory = Path.Combine(workDirectory, "data");
        ClientPort = clientPort;
        PeerPort = peerPort;
        Hosting = hosting;
        ClientAddress = new Uri($"http://127.0.0.1:{clientPort}");
        PeerAddress = new Uri($"https://127.0.0.1:{peerPort}");
    }

    /// <summary>The member id (its peer certificate's common name).</summary>
    public string Id { get; }

    /// <summary>How to open the member's token (the token folder is apart from <see cref="DataDirectory"/>).</summary>
    public TokenOptions Token { get; }

    /// <summary>Folder of this member's configuration and data.</summary>
    public string WorkDirectory { get; }

    /// <summary>The member's data folder: Raft log, snapshots, SQLite state.</summary>
    public string DataDirectory { get; }

    /// <summary>Port of the client (vault API) endpoint, plain h2c.</summary>
    public int ClientPort { get; }

    /// <summary>Port of the peer endpoint, mutual TLS.</summary>
    public int PeerPort { get; }

    /// <summary>Where clients reach the member.</summary>
    public Uri ClientAddress { get; }

    /// <summary>Where peers reach the member.</summary>
    public Uri PeerAddress { get; }

    /// <summary>How the daemon runs.</summary>
    public MemberHosting Hosting { get; set; }

    /// <summary>The configuration the daemon starts with, as flat keys; tests may change it before a start.</summary>
    public Dictionary<string, string?> Settings { get; } = new(StringComparer.Ordinal);

    /// <summary>Events of every in-process run of this member.</summary>
    public LogCapture Logs { get; } = new();

    /// <summary>Whether the daemon is running.</summary>
    public bool IsRunning => _host is not null || _child is { HasExited: false };

    /// <summary>Lines every child-process run of this member printed.</summary>
    public string ChildOutput
    {
        get
        {
            lock (_lock)
            {
                return string.Join('\n', _childLines);
            }
        }
    }

    /// <summary>The running in-process daemon's services.</summary>
    public IServiceProvider Services => (_host ?? throw new InvalidOperationException($"{Id} is not running in this process")).Services;

    /// <summary>The running in-process daemon's Raft host.</summary>
    public RaftHost Raft => Services.GetRequiredService<RaftHost>();

    /// <summary>Every log line of every run, in-process or child, for failure messages.</summary>
    public string AllLogs => Logs.Text + (ChildOutput.Length == 0 ? "" : "\n" + ChildOutput);

    /// <summary>
    /// What this member believes about leadership now: from its Raft host in this process, or
    /// from its log lines ("became leader of term", "follows ... in term") as a child. Null when it
    /// is not running.
    /// </summary>
    public LeaderView? View()
    {
        if (_host is not null)
        {
            var status = Raft.Status;
            return status is null ? null : new LeaderView(status.Term, status.LeaderId);
        }

        lock (_lock)
        {
            return _child is { HasExited: false } ? _childView : null;
        }
    }

    /// <summary>Starts the daemon (in this process or as a child, per <see cref="Hosting"/>) and waits until it listens.</summary>
    /// <param name="environment">Extra environment variables for a child process (HSMVAULT_FAULT_POINT, ...).</param>
    public async Task StartAsync(IReadOnlyDictionary<string, string>? environment = null)
    {
        if (IsRunning)
        {
            throw new InvalidOperationException($"{Id} is already running");
        }

        if (_child is { } exited)
        {
            // It ended on its own (a fault point, a failed start): release it before the next run.
            _child = null;
            await exited.DisposeAsync();
        }

        if (Hosting == MemberHosting.InProcess)
        {
            _host = await InProcessHost.StartDaemonAsync(
                Settings, Logs, services: s => s.AddSingleton<IPeerCallInterceptor>(new CutLinks(_cuts, Id)));
        }
        else
        {
            lock (_lock)
            {
                _childView = null;
            }

            _child = await ChildDaemon.StartAsync(WriteJsonConfig(), environment, OnChildLine);
        }
    }

    /// <summary>Stops the daemon: a clean stop in this process, kill -9 of a child.</summary>
    public async Task StopAsync()
    {
        var host = _host;
        _host = null;
        if (host is not null)
        {
            await host.DisposeAsync();
        }

        var child = _child;
        _child = null;
        if (child is not null)
        {
            await child.DisposeAsync();
        }
    }

    /// <summary>kill -9 of a child-process member (an in-process one can only be stopped).</summary>
    public Task KillAsync() => Hosting == MemberHosting.ChildProcess
        ? StopAsync()
        : throw new InvalidOperationException($"{Id} runs in this process; it can be stopped but not killed");

    /// <summary>Writes <see cref="Settings"/> as the nested JSON file an operator would write; returns its path.</summary>
    public string WriteJsonConfig(string name = "hsmvaultd.json") => DaemonConfigFile.Write(Settings, Path.Combine(WorkDirectory, name));

    /// <inheritdoc/>
    public async ValueTask DisposeAsync() => await StopAsync();

    /// <inheritdoc/>
    public override string ToString() => Id;

    private void OnChildLine(string line)
    {
        LeaderView? view = null;
        if (BecameLeaderLine().Match(line) is { Success: true } leader)
        {
            view = new LeaderView(ulong.Parse(leader.Groups["term"].Value, CultureInfo.InvariantCulture), Id);
        }
        else if (FollowsLine().Match(line) is { Success: true } follows)
        {
            view = new LeaderView(ulong.Parse(follows.Groups["term"].Value, CultureInfo.InvariantCulture), follows.Groups["leader"].Value);
        }
        else if (SteppedDownLine().Match(line) is { Success: true } steppedDown)
        {
            view = new LeaderView(ulong.Parse(steppedDown.Groups["term"].Value, CultureInfo.InvariantCulture), null);
        }

        lock (_lock)
        {
            _childLines.Add(line);
            if (view is not null)
            {
                _childView = view;
            }
        }
    }

    [GeneratedRegex(@"Raft member \S+ became leader of term (?<term>\d+)", RegexOptions.CultureInvariant)]
    private static partial Regex BecameLeaderLine();

    [GeneratedRegex(@"Raft member \S+ follows (?<leader>\S+) in term (?<term>\d+)", RegexOptions.CultureInvariant)]
    private static partial Regex FollowsLine();

    [GeneratedRegex(@"Raft member \S+ no longer leads \(term (?<term>\d+)\)", RegexOptions.CultureInvariant)]
    private static partial Regex SteppedDownLine();
}
