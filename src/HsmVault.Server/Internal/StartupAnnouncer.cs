using HsmVault.Hsm;
using HsmVault.Vault;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace HsmVault.Server.Internal;

/// <summary>
/// Opens the token and the state before the daemon accepts a request, so a wrong
/// configuration fails at start-up with its own message rather than at the first call; then
/// says where the daemon listens.
/// </summary>
internal sealed partial class StartupAnnouncer(
    IServiceProvider services,
    IServer server,
    IHostApplicationLifetime lifetime,
    IOptions<VaultOptions> options,
    ILogger<StartupAnnouncer> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        var token = services.GetRequiredService<IVaultToken>();
        services.GetRequiredService<VaultService>();
        // The tenants' keys too: JWT options are otherwise built at the first request, and an
        // unreadable key file would then fail every call of a daemon that looks healthy.
        services.GetRequiredService<IOptionsMonitor<JwtBearerOptions>>().Get(JwtBearerDefaults.AuthenticationScheme);
        Log.TokenReady(logger, token.Description.Label, token.Description.SerialNumber, token.Description.Model);
        lifetime.ApplicationStarted.Register(() =>
        {
            var addresses = server.Features.Get<IServerAddressesFeature>()?.Addresses ?? [];
            Log.Listening(logger, options.Value.FleetId, options.Value.MemberId, string.Join(", ", addresses));
        });
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private static partial class Log
    {
        [LoggerMessage(1000, LogLevel.Information, "Token '{Label}' (serial {Serial}, model {Model}) is ready")]
        public static partial void TokenReady(ILogger logger, string label, string serial, string model);

        [LoggerMessage(1001, LogLevel.Information, "hsmvaultd {FleetId}/{MemberId} listening on {Addresses}")]
        public static partial void Listening(ILogger logger, string fleetId, string memberId, string addresses);
    }
}
