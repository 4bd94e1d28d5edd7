using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace HsmVault.Witness.Internal;

/// <summary>
/// Opens the token key and the log before the witness accepts a request, so a wrong
/// configuration fails at start-up with its own message; then says where the witness listens.
/// </summary>
internal sealed partial class WitnessStartup(WitnessLog log, IServer server, IHostApplicationLifetime lifetime, ILogger<WitnessStartup> logger) : IHostedService
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

    /// <summary>Log messages of the witness start-up; event id 7005.</summary>
    private static partial class Log
    {
        [LoggerMessage(EventId = 7005, EventName = "WitnessListening", Level = LogLevel.Information, Message = "hsmvault-witness {Origin} listening on {Addresses}")]
        public static partial void Listening(ILogger logger, string origin, string addresses);
    }
}
