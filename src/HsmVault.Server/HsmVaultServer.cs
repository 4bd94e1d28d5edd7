using Grpc.AspNetCore.Server.Model;
using HsmVault.Hsm;
using HsmVault.Server.Authentication;
using HsmVault.Server.Bundles;
using HsmVault.Server.Internal;
using HsmVault.Server.Peering;
using HsmVault.Server.RateLimiting;
using HsmVault.Server.Services;
using HsmVault.Vault;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace HsmVault.Server;

/// <summary>
/// Builds the <c>hsmvaultd</c> host: Kestrel serving the vault API and gRPC health checks,
/// with the token, the state and the log wired behind them. The executable and the tests
/// both start the daemon through here.
/// </summary>
public static class HsmVaultServer
{
    /// <summary>Largest gRPC message accepted; the biggest legitimate request is about 1.3 KiB.</summary>
    public const int MaxMessageBytes = 16 * 1024;

    /// <summary>
    /// Creates the builder with every service registered. Configuration comes from
    /// <c>appsettings.json</c>, the file named by <c>--config</c>, <c>HSMVAULT_*</c>
    /// environment variables (double underscore for ':'), then the command line.
    /// </summary>
    public static WebApplicationBuilder CreateBuilder(string[] args, Action<IConfigurationBuilder>? configure = null)
    {
        // ASP.NET's defaults reload appsettings.json on change, which makes the content root (the working
        // directory) a recursive file watch: with the data and token folders beneath it (`make run` keeps
        // .run/ there), every SQLite, log and token write would wake the daemon. Configuration is read once
        // at start; a changed configuration takes a restart, as the fleet's membership does anyway.
        var builder = WebApplication.CreateSlimBuilder([.. args, "--hostBuilder:reloadConfigOnChange=false"]);
        var configFile = builder.Configuration["config"];
        if (!string.IsNullOrEmpty(configFile))
        {
            builder.Configuration.AddJsonFile(Path.GetFullPath(configFile), optional: false);
        }

        builder.Configuration.AddEnvironmentVariables("HSMVAULT_");
        builder.Configuration.AddCommandLine(args);
        configure?.Invoke(builder.Configuration);

        // Per-request framework logs drown the vault's own events; configuration can turn them back on.
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        builder.Logging.AddFilter("Grpc", LogLevel.Warning);
        // The health service logs every unhealthy probe as an error, which during an election
        // is noise: the Raft host logs leadership changes as its own events.
        builder.Logging.AddFilter("Microsoft.Extensions.Diagnostics.HealthChecks", LogLevel.Critical);

        builder.Services.AddHsmVaultDaemon();
        return builder;
    }

    /// <summary>Builds the application and maps its endpoints.</summary>
    public static WebApplication Build(WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var app = builder.Build();
        // Before any service opens the database or the Raft log in it.
        ProcessHardening.SecureDataDirectory(
            app.Services.GetRequiredService<IOptions<VaultOptions>>().Value.DataDirectory,
            app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(ProcessHardening)));
        app.UseBundleHeaders();
        app.UseAuthentication();
        // After authentication (the buckets are per tenant and user), before authorization (so
        // calls with a refused token are limited per address too).
        app.UseRateLimiter();
        app.UseAuthorization();
        app.MapGrpcService<VaultEndpoints>();
        app.MapGrpcHealthChecksService();
        if (app.Services.GetService<PeerEndpoint>() is { } peering)
        {
            // Served only on connections to the peer port (the Host header is the client's to
            // choose, the local port is not); PeerGrpcService also insists on a member's certificate.
            app.MapGrpcService<PeerGrpcService>().AddEndpointFilter(async (context, next) =>
                context.HttpContext.Connection.LocalPort == peering.Port ? await next(context) : Results.NotFound());
        }

        return app;
    }

    /// <summary>
    /// Hardens the whole process as <see cref="ProcessOptions"/> say: umask 077 (every file the
    /// daemon writes is 0600), no core dumps, memory locked. For the daemon executable, before it
    /// runs <paramref name="app"/>; a host that runs the daemon inside another program (a test
    /// runner) leaves that program's process alone by not calling it.
    /// </summary>
    /// <exception cref="StartupRefusedException">Memory locking is required and the system refuses it.</exception>
    public static void HardenProcess(WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        ProcessHardening.HardenProcess(
            app.Services.GetRequiredService<IOptions<ProcessOptions>>().Value,
            app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(ProcessHardening)));
    }

    /// <summary>Registers the daemon's services: everything a host needs to serve as a member, Kestrel's endpoints included.</summary>
    public static IServiceCollection AddHsmVaultDaemon(this IServiceCollection services)
    {
        services.Configure<KestrelServerOptions>(kestrel =>
        {
            // gRPC over HTTP/2 without TLS (h2c) unless the operator configures TLS endpoints.
            kestrel.ConfigureEndpointDefaults(endpoint => endpoint.Protocols = HttpProtocols.Http2);
            kestrel.AddServerHeader = false;
        });
        services.AddHsmVaultToken();
        // Peering before the core: its fleet membership takes the place of the core's fleet of one.
        services.AddHsmVaultPeering();
        // Before the core, whose own registration is a fleet that takes no users over.
        services.TryAddSingleton(sp => ServedBundle.LoadPredecessors(
            sp.GetRequiredService<IOptions<BundleOptions>>().Value, sp.GetRequiredService<IOptions<VaultOptions>>().Value));
        services.AddHsmVaultCore();
        services.AddOptions<ProcessOptions>().BindConfiguration(ProcessOptions.SectionName);
        services.AddOptions<BundleOptions>().BindConfiguration(BundleOptions.SectionName).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<BundleOptions>, BundleOptionsValidator>());
        services.TryAddSingleton<ServedBundle>();
        services.TryAddSingleton<WitnessConsistencyProofs>();
        services.AddHostedService<BundleFileReloader>();
        services.TryAddSingleton<FleetInfoProvider>();
        // Singletons: the API holds no per-call state, and grpc-dotnet then activates nothing per call.
        services.TryAddSingleton<VaultGrpcService>();
        services.TryAddSingleton<VaultEndpoints>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IServiceMethodProvider<VaultEndpoints>, VaultMethodProvider>());
        services.AddHostedService<StartupAnnouncer>();

        // Authentication pulls in ASP.NET data protection, which the vault never uses; keep its
        // keys in memory rather than in unencrypted files under the user's profile.
        services.AddDataProtection().UseEphemeralDataProtectionProvider();
        services.AddHsmVaultAuthentication();
        services.AddHsmVaultRateLimiting();
        services.AddGrpc(grpc =>
        {
            grpc.MaxReceiveMessageSize = MaxMessageBytes;
            grpc.EnableDetailedErrors = false;
            grpc.Interceptors.Add<VaultExceptionInterceptor>();
        })
        .AddServiceOptions<PeerGrpcService>(peer =>
        {
            // Members send batches of log entries and snapshot chunks; the 16 KiB client cap
            // would stop a lagging or wiped member from ever catching up.
            peer.MaxReceiveMessageSize = PeerConnections.MaxMessageBytes;
        });
        services.AddGrpcHealthChecks()
            .AddCheck<TokenHealthCheck>("token")
            .AddCheck<RaftHealthCheck>("raft");
        return services;
    }
}
