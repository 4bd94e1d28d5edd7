using HsmVault.Server;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace HsmVault.Testing.Daemons;

/// <summary>
/// A daemon's host in this process, built as the executable builds it (hsmvaultd's
/// <see cref="HsmVaultServer"/>, or the witness's), on real Kestrel, with every log event kept in
/// a <see cref="LogCapture"/>. Disposing it is a clean stop.
/// </summary>
public sealed class InProcessHost : IAsyncDisposable
{
    /// <summary>A hang guard for a loaded machine, not an assertion.</summary>
    private static readonly TimeSpan StartTimeout = TimeSpan.FromMinutes(2);

    private static readonly TimeSpan StopTimeout = TimeSpan.FromMinutes(1);

    private readonly WebApplication _app;
    private int _stopped;

    private InProcessHost(WebApplication app, IReadOnlyList<Uri> addresses)
    {
        _app = app;
        Addresses = addresses;
    }

    /// <summary>The running host's services.</summary>
    public IServiceProvider Services => _app.Services;

    /// <summary>Every address Kestrel listens on (port 0 in the configuration reads back as the bound port).</summary>
    public IReadOnlyList<Uri> Addresses { get; }

    /// <summary>The address of a host with one endpoint.</summary>
    public Uri Address => Addresses.Count == 1
        ? Addresses[0]
        : throw new InvalidOperationException($"the host listens on {Addresses.Count} addresses: {string.Join(", ", Addresses)}");

    /// <summary>Builds and starts hsmvaultd with <paramref name="settings"/> (flat configuration keys).</summary>
    /// <param name="settings">The daemon's configuration.</param>
    /// <param name="logs">Where its log events go.</param>
    /// <param name="minimumLevel">The lowest level logged for HsmVault's own categories.</param>
    /// <param name="services">
    /// Services registered after the daemon's own, so that they replace its defaults (the last
    /// registration of a service is the one resolved), e.g. an <c>IVaultToken</c> behind test faults.
    /// </param>
    /// <exception cref="Microsoft.Extensions.Options.OptionsValidationException">The configuration is refused at start-up.</exception>
    public static Task<InProcessHost> StartDaemonAsync(
        IReadOnlyDictionary<string, string?> settings,
        LogCapture logs,
        LogLevel minimumLevel = LogLevel.Information,
        Action<IServiceCollection>? services = null)
    {
        var builder = HsmVaultServer.CreateBuilder([], configuration => configuration.AddInMemoryCollection(settings));
        services?.Invoke(builder.Services);
        return StartAsync(builder, HsmVaultServer.Build, logs, minimumLevel);
    }

    /// <summary>Routes <paramref name="builder"/>'s logs to <paramref name="logs"/>, builds the host with <paramref name="build"/> and starts it.</summary>
    /// <param name="builder">The host's builder, with its configuration.</param>
    /// <param name="build">Builds the application, as the executable does.</param>
    /// <param name="logs">Where its log events go.</param>
    /// <param name="minimumLevel">The lowest level logged for HsmVault's own categories.</param>
    public static async Task<InProcessHost> StartAsync(
        WebApplicationBuilder builder,
        Func<WebApplicationBuilder, WebApplication> build,
        LogCapture logs,
        LogLevel minimumLevel = LogLevel.Information)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(build);
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(logs);
        builder.Logging.AddFilter("HsmVault", minimumLevel);
        var app = build(builder);
        try
        {
            using var timeout = new CancellationTokenSource(StartTimeout);
            await app.StartAsync(timeout.Token);
            var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses
                ?? throw new InvalidOperationException("the server reports no addresses");
            return new InProcessHost(app, [.. addresses.Select(a => new Uri(a))]);
        }
        catch
        {
            await app.DisposeAsync();
            throw;
        }
    }

    /// <summary>Stops the host cleanly (the token released, as at a shutdown) and disposes it; again is a no-op.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _stopped, 1) == 1)
        {
            return;
        }

        try
        {
            using var timeout = new CancellationTokenSource(StopTimeout);
            await _app.StopAsync(timeout.Token);
        }
        finally
        {
            await _app.DisposeAsync();
        }
    }
}
