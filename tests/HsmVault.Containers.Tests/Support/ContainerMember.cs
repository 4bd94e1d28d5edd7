using System.Globalization;
using System.Text.RegularExpressions;
using Docker.DotNet;
using DotNet.Testcontainers.Containers;
using Grpc.Net.Client;

namespace HsmVault.Containers.Tests.Support;

/// <summary>What a member's container is doing, as the test made it.</summary>
public enum MemberState
{
    /// <summary>Running and on the fleet's network.</summary>
    Running,

    /// <summary>Killed or stopped.</summary>
    Down,

    /// <summary>Frozen by <c>docker pause</c>: its sockets accept, nothing answers.</summary>
    Paused,

    /// <summary>Running, but disconnected from the fleet's network.</summary>
    Disconnected,
}

/// <summary>One hsmvaultd container of a <see cref="ContainerFleet"/>, with its three volumes.</summary>
public sealed partial class ContainerMember : IAsyncDisposable
{
    /// <summary>The client port inside the container (the image's default).</summary>
    public const int ClientPort = 7101;

    private readonly string _network;
    private GrpcChannel? _channel;
    private int _channelPort;

    internal ContainerMember(string id, IContainer container, string network, string tokenVolume, string dataVolume, string configVolume)
    {
        Id = id;
        Container = container;
        _network = network;
        TokenVolume = tokenVolume;
        DataVolume = dataVolume;
        ConfigVolume = configVolume;
    }

    /// <summary>The member id, also its host name on the fleet's network.</summary>
    public string Id { get; }

    /// <summary>The Testcontainers container.</summary>
    public IContainer Container { get; }

    /// <summary>Its container name.</summary>
    public string Name => Container.Name.TrimStart('/');

    /// <summary>The volume of its SoftHSM2 token folder (and the high-water mark in it).</summary>
    public string TokenVolume { get; }

    /// <summary>The volume of its data folder (database, Raft log).</summary>
    public string DataVolume { get; }

    /// <summary>The volume of its configuration.</summary>
    public string ConfigVolume { get; }

    /// <summary>What the test made of it.</summary>
    public MemberState State { get; private set; } = MemberState.Down;

    /// <summary>Whether a client on this machine can reach it and it can reach its peers.</summary>
    public bool IsReachable => State == MemberState.Running;

    /// <summary>The port on 127.0.0.1 that Docker maps to its client endpoint (a new one after every start).</summary>
    public int HostPort { get; private set; }

    /// <summary>A channel to its client endpoint through the mapped port, renewed when the port changes.</summary>
    public GrpcChannel Channel()
    {
        if (_channel is null || _channelPort != HostPort)
        {
            _channel?.Dispose();
            _channel = GrpcChannel.ForAddress(new Uri($"http://127.0.0.1:{HostPort}"));
            _channelPort = HostPort;
        }

        return _channel;
    }

    /// <summary>Starts (or restarts) the container with its volumes.</summary>
    public async Task StartAsync()
    {
        await Container.StartAsync();
        await ReadHostPortAsync();
        State = MemberState.Running;
    }

    /// <summary><c>docker kill</c>: SIGKILL, no shutdown.</summary>
    public async Task KillAsync()
    {
        await DockerCli.RunAsync("kill", Name);
        State = MemberState.Down;
    }

    /// <summary><c>docker stop</c>: a clean shutdown.</summary>
    public async Task StopAsync()
    {
        await DockerCli.RunAsync("stop", Name);
        State = MemberState.Down;
    }

    /// <summary><c>docker pause</c>: the process is frozen, its sockets stay open.</summary>
    public async Task PauseAsync()
    {
        // The cgroup freezer gives up ("unable to freeze") while a task of the container sits in
        // an uninterruptible sleep, e.g. an fsync on a busy disk, and leaves it thawed; an
        // operator tries again, and so does this.
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await Container.PauseAsync();
                break;
            }
            catch (DockerApiException e) when (attempt < 10 && e.Message.Contains("unable to freeze", StringComparison.Ordinal))
            {
                await Task.Delay(TimeSpan.FromSeconds(1));
            }
        }

        State = MemberState.Paused;
    }

    /// <summary><c>docker unpause</c>.</summary>
    public async Task UnpauseAsync()
    {
        await Container.UnpauseAsync();
        State = MemberState.Running;
    }

    /// <summary>Disconnects it from the fleet's network: a partition of the kernel's making, not of the test's.</summary>
    public async Task DisconnectAsync()
    {
        await DockerCli.RunAsync("network", "disconnect", _network, Name);
        State = MemberState.Disconnected;
    }

    /// <summary>Connects it again, under its host name.</summary>
    public async Task ReconnectAsync()
    {
        await DockerCli.RunAsync("network", "connect", "--alias", Id, _network, Name);
        // The published port follows the container's new address on the network.
        await ReadHostPortAsync();
        State = MemberState.Running;
    }

    /// <summary>Everything the container has printed, over all its starts.</summary>
    public async Task<string> LogsAsync()
    {
        var (stdout, stderr) = await Container.GetLogsAsync(timestampsEnabled: false);
        return stdout + stderr;
    }

    /// <summary>
    /// The highest Raft term in which its log says it became leader, or null: a member logs
    /// "became leader of term T" whenever it wins an election.
    /// </summary>
    public async Task<(long LeaderTerm, long HighestTerm)> TermsAsync()
    {
        var logs = await LogsAsync();
        var led = LeaderLine().Matches(logs).Select(m => long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)).DefaultIfEmpty(0).Max();
        var seen = TermLine().Matches(logs).Select(m => long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)).DefaultIfEmpty(0).Max();
        return (led, Math.Max(led, seen));
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        _channel?.Dispose();
        await Container.DisposeAsync();
    }

    private async Task ReadHostPortAsync()
    {
        // `docker port` rather than the start-time inspection: the mapping is re-made by every
        // start and every reconnect. Its answer is "127.0.0.1:PORT".
        var mapping = (await DockerCli.RunAsync("port", Name, $"{ClientPort}/tcp")).Split('\n', StringSplitOptions.RemoveEmptyEntries)[0].Trim();
        HostPort = int.Parse(mapping[(mapping.LastIndexOf(':') + 1)..], CultureInfo.InvariantCulture);
    }

    [GeneratedRegex(@"became leader of term (\d+)")]
    private static partial Regex LeaderLine();

    [GeneratedRegex(@"in term (\d+)")]
    private static partial Regex TermLine();
}
