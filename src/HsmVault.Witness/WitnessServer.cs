using HsmVault.Hsm;
using HsmVault.Witness.Internal;
using HsmVault.Witness.Services;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace HsmVault.Witness;

/// <summary>
/// Builds the <c>hsmvault-witness</c> host: Kestrel serving the witness API and gRPC health
/// checks over the log and the witness's token key. The executable and the tests both start the
/// witness through here.
/// </summary>
public static partial class WitnessServer
{
    /// <summary>Largest gRPC message accepted: a bundle of <see cref="WitnessLog.MaxBundleBytes"/> and its envelope.</summary>
    public const int MaxMessageBytes = WitnessLog.MaxBundleBytes + (4 * 1024);

    /// <summary>
    /// Creates the builder with every service registered. Configuration comes from
    /// <c>appsettings.json</c>, the file named by <c>--config</c>, <c>HSMVAULT_*</c>
    /// environment variables (double underscore for ':'), then the command line.
    /// </summary>
    public static WebApplicationBuilder CreateBuilder(string[] args, Action<IConfigurationBuilder>? configure = null)
    {
        // As hsmvaultd does (HsmVaultServer.CreateBuilder): ASP.NET's default reload-on-change configuration watches the
        // content root (the working directory) recursively, and every write beneath it (the log, the token folder)
        // would wake the witness. Configuration is read once at start.
        var builder = WebApplication.CreateSlimBuilder([.. args, "--hostBuilder:reloadConfigOnChange=false"]);
        var configFile = builder.Configuration["config"];
        if (!string.IsNullOrEmpty(configFile))
        {
            builder.Configuration.AddJsonFile(Path.GetFullPath(configFile), optional: false);
        }

        builder.Configuration.AddEnvironmentVariables("HSMVAULT_");
        builder.Configuration.AddCommandLine(args);
        configure?.Invoke(builder.Configuration);

        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        builder.Logging.AddFilter("Grpc", LogLevel.Warning);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            // gRPC over HTTP/2 without TLS (h2c) unless the operator configures TLS endpoints.
            kestrel.ConfigureEndpointDefaults(endpoint => endpoint.Protocols = HttpProtocols.Http2);
            kestrel.AddServerHeader = false;
        });
        builder.Services.AddHsmVaultWitness();
        return builder;
    }

    /// <summary>Builds the application and maps its endpoints.</summary>
    public static WebApplication Build(WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var app = builder.Build();
        app.MapGrpcService<WitnessGrpcService>();
        app.MapGrpcHealthChecksService();
        return app;
    }

    /// <summary>
    /// Registers the witness: <see cref="WitnessOptions"/> from <c>HsmVault:Witness</c> and
    /// <see cref="TokenOptions"/> from <c>HsmVault:Token</c> (both checked at start-up), the token
    /// key, the log, and the gRPC service.
    /// </summary>
    public static IServiceCollection AddHsmVaultWitness(this IServiceCollection services)
    {
        services.AddOptions<WitnessOptions>().BindConfiguration(WitnessOptions.SectionName).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<WitnessOptions>, WitnessOptionsValidator>());
        services.AddHsmVaultTokenOptions();
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(sp =>
        {
            var options = sp.GetRequiredService<IOptions<WitnessOptions>>().Value;
            var logger = sp.GetRequiredService<ILoggerFactory>().CreateLogger("HsmVault.Witness");
            var key = TokenSigningKey.Open(
                sp.GetRequiredService<IOptions<TokenOptions>>().Value, options.KeyLabel, options.GenerateKeyIfMissing,
                sp.GetRequiredService<ILoggerFactory>().CreateLogger("HsmVault.Hsm"));
            if (key.Generated)
            {
                Log.KeyGenerated(logger, options.KeyLabel, key.Description.Label);
            }

            return key;
        });
        services.TryAddSingleton<IWitnessSigner>(sp => new TokenWitnessSigner(sp.GetRequiredService<TokenSigningKey>()));
        services.TryAddSingleton(sp => WitnessLog.Open(
            sp.GetRequiredService<IOptions<WitnessOptions>>().Value,
            sp.GetRequiredService<IWitnessSigner>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ILoggerFactory>().CreateLogger("HsmVault.Witness")));
        services.AddHostedService<WitnessStartup>();
        services.AddGrpc(grpc =>
        {
            grpc.MaxReceiveMessageSize = MaxMessageBytes;
            grpc.EnableDetailedErrors = false;
        });
        services.AddGrpcHealthChecks().AddCheck<WitnessHealthCheck>("witness");
        return services;
    }

    /// <summary>Log messages of the witness host's wiring; event id 7004.</summary>
    private static partial class Log
    {
        [LoggerMessage(EventId = 7004, EventName = "WitnessKeyGenerated", Level = LogLevel.Information,
            Message = "Generated the witness key '{KeyLabel}' in token '{TokenLabel}'")]
        public static partial void KeyGenerated(ILogger logger, string keyLabel, string tokenLabel);
    }
}
