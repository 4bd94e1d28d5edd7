using Grpc.Net.Client;
using HsmVault.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Xunit;
using ProtoVault = HsmVault.Protocol.V1.Vault;

namespace HsmVault.Testing.Daemons;

/// <summary>
/// A real hsmvaultd in this process (an <see cref="InProcessHost"/>): Kestrel on an
/// ephemeral loopback port, a real SoftHSM2 token and SQLite state. Every log event is
/// captured; <see cref="AssertCleanLogs"/> fails on an unexpected error and on any secret
/// (the PIN, a test's password or backup key) in the text.
/// </summary>
public sealed class TestDaemon : IAsyncDisposable
{
    private readonly List<GrpcChannel> _channels = [];
    private readonly List<Func<CapturedLog, bool>> _expectedErrors = [];
    private readonly Lock _lock = new();
    private readonly Action<IServiceCollection>? _services;
    private InProcessHost? _host;

    private TestDaemon(DaemonSetup setup, Action<Dictionary<string, string?>>? configure, Action<IServiceCollection>? services)
    {
        Setup = setup;
        Settings = setup.Configuration();
        configure?.Invoke(Settings);
        _services = services;
    }

    /// <summary>The member's token, keys and folders.</summary>
    public DaemonSetup Setup { get; }

    /// <summary>The configuration the daemon starts with (flat keys).</summary>
    public Dictionary<string, string?> Settings { get; }

    /// <summary>Every log event of every start of this daemon.</summary>
    public LogCapture Logs { get; } = new();

    /// <summary>Where the daemon listens now, e.g. <c>http://127.0.0.1:41234</c>.</summary>
    public Uri Address { get; private set; } = null!;

    /// <summary>Whether the daemon is running.</summary>
    public bool IsRunning => _host is not null;

    /// <summary>Provisions a token and starts a daemon on it.</summary>
    /// <param name="configure">Changes to the configuration before the start.</param>
    /// <param name="maxConcurrentOperations">The token's cap on concurrent operations.</param>
    /// <param name="services">
    /// Services registered before the daemon's own, which it then uses instead of its defaults
    /// (its registrations are TryAdd*): e.g. an <c>IVaultToken</c> behind <c>TokenFaults</c>.
    /// </param>
    public static async Task<TestDaemon> StartAsync(
        Action<Dictionary<string, string?>>? configure = null,
        int maxConcurrentOperations = 2,
        Action<IServiceCollection>? services = null)
    {
        var daemon = new TestDaemon(DaemonSetup.Create(maxConcurrentOperations), configure, services);
        await daemon.StartAgainAsync();
        return daemon;
    }

    /// <summary>Stops the host and releases the token, as a clean shutdown does.</summary>
    public async Task StopAsync()
    {
        var host = _host;
        _host = null;
        if (host is not null)
        {
            await host.DisposeAsync();
        }
    }

    /// <summary>Stops and starts again over the same token and data folder (on a new port).</summary>
    public async Task RestartAsync()
    {
        await StopAsync();
        await StartAgainAsync();
    }

    /// <summary>A channel to the daemon's current address; closed when the daemon is disposed.</summary>
    public GrpcChannel CreateChannel()
    {
        var channel = GrpcChannel.ForAddress(Address);
        lock (_lock)
        {
            _channels.Add(channel);
        }

        return channel;
    }

    /// <summary>The client library, as <paramref name="user"/> of <paramref name="tenant"/>.</summary>
    public VaultClient CreateClient(string user, string tenant = DaemonSetup.Tenant)
    {
        var jwt = Setup.Mint(user, tenant);
        return new VaultClient(CreateChannel().CreateCallInvoker(), _ => ValueTask.FromResult(jwt));
    }

    /// <summary>The generated gRPC client, for hand-made (and malformed) messages; add <see cref="DaemonSetup.Headers"/> to calls.</summary>
    public ProtoVault.VaultClient CreateRawClient() => new(CreateChannel());

    /// <summary>Lets log events matching <paramref name="predicate"/> be errors without failing the test.</summary>
    public void ExpectErrors(Func<CapturedLog, bool> predicate)
    {
        lock (_lock)
        {
            _expectedErrors.Add(predicate);
        }
    }

    /// <summary>Fails if an unexpected Error/Critical event was logged or any secret occurs in the log text.</summary>
    public void AssertCleanLogs()
    {
        List<Func<CapturedLog, bool>> expected;
        lock (_lock)
        {
            expected = [.. _expectedErrors];
        }

        var errors = Logs.Events.Where(e => e.Level >= LogLevel.Error && !expected.Any(p => p(e))).ToList();
        Assert.True(errors.Count == 0, "unexpected error logs:\n" + string.Join('\n', errors));
        var leaked = Setup.SecretsIn(Logs.Text);
        Assert.True(leaked.Count == 0, $"{leaked.Count} secret(s) appear in the daemon's logs");
    }

    /// <summary>Stops the daemon, closes channels and deletes the work folder.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            await StopAsync();
        }
        finally
        {
            lock (_lock)
            {
                foreach (var channel in _channels)
                {
                    channel.Dispose();
                }

                _channels.Clear();
            }

            Setup.Dispose();
        }
    }

    private async Task StartAgainAsync()
    {
        // Trace: the secrets check then covers every message the daemon can write.
        var host = await InProcessHost.StartDaemonAsync(Settings, Logs, LogLevel.Trace, _services);
        Address = host.Address;
        _host = host;
    }
}
