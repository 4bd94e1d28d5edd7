using HsmVault.Vault;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace HsmVault.Server.Peering;

/// <summary>
/// Publishes this member's state digest into the log at each checkpoint it reaches, so that
/// every member compares its state with the others' at apply (see
/// <see cref="Vault.State.StateDigestChain"/>). A failed publication is tried again on the next
/// round; nothing depends on any single one.
/// </summary>
internal sealed partial class StateDigestPublisher(VaultService vault, TimeProvider time, ILogger<StateDigestPublisher> logger) : BackgroundService
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    await vault.PublishStateDigestAsync(stoppingToken);
                }
                catch (VaultException e)
                {
                    Log.PublishFailed(logger, e.Message);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutting down.
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 3400, EventName = "StateDigestNotPublished", Level = LogLevel.Debug,
            Message = "Could not publish this member's state digest ({Detail}); trying again")]
        public static partial void PublishFailed(ILogger logger, string detail);
    }
}
