using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace HsmVault.Witness.Internal;

/// <summary>
/// Opens the token key and the log before the witness accepts a request, so a wrong
/// configuration fails at start-up with its own message; then says where the witness listens.
/// </summary>
internal sealed class WitnessStartup(WitnessLog log, IServer server, IHostApplicationLifetime lifetime, ILogger<WitnessStartup> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        lifetime.ApplicationStarted.Register(() =>
        {
            var addresses = string.Join(", ", server.Features.Get<IServerAddressesFeature>()?.Addresses ?? []);
            Log.Listening(logger, log.Origin, addresses);
        });
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
