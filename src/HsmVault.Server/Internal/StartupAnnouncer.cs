using HsmVault.Hsm;
using HsmVault.Server.Bundles;
using HsmVault.Server.Peering;
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
        // The served validation bundle is checked against the token now: a wrong file refuses the start.
        services.GetRequiredService<ServedBundle>();
        // The tenants' keys too: JWT options are otherwise built at the first request, and an
        // unreadable key file would then fail every call of a daemon that looks healthy.
        services.GetRequiredService<IOptionsMonitor<JwtBearerOptions>>().Get(JwtBearerDefaults.AuthenticationScheme);
        Log.TokenReady(logger, token.Description.Label, token.Description.SerialNumber, token.Description.Model);
        lifetime.ApplicationStarted.Register(() =>
        {
            var addresses = server.Features.Get<IServerAddressesFeature>()?.Addresses ?? [];
            var peerPort = services.GetService<PeerEndpoint>()?.Port;
            bool IsPeer(string address) => peerPort is not null && Uri.TryCreate(address, UriKind.Absolute, out var uri) && uri.Port == peerPort;
            var clients = string.Join(", ", addresses.Where(a => !IsPeer(a)));
            var peers = addresses.Where(IsPeer).ToList();
            Log.Listening(logger, options.Value.FleetId, options.Value.MemberId, clients,
                peers.Count == 0 ? "no peer endpoint (a fleet of one)" : string.Join(", ", peers) + " for peers (mutual TLS)");
        });
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private static partial class Log
    {
        [LoggerMessage(EventId = 1000, EventName = "TokenReady", Level = LogLevel.Information, Message = "Token '{Label}' (serial {Serial}, model {Model}) is ready")]
        public static partial void TokenReady(ILogger logger, string label, string serial, string model);

        [LoggerMessage(EventId = 1001, EventName = "DaemonListening", Level = LogLevel.Information,
            Message = "hsmvaultd {FleetId}/{MemberId} listening on {ClientAddresses} for clients; {PeerAddresses}")]
        public static partial void Listening(ILogger logger, string fleetId, string memberId, string clientAddresses, string peerAddresses);
    }
}
