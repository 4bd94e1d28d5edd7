using HsmVault.Consensus;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace HsmVault.Server.Peering;

/// <summary>
/// Runs the member's Raft host for the daemon's lifetime. If the host stops on its own (its
/// disk or state machine failed), the daemon stops too: a member must not keep serving from a
/// disk it cannot trust.
/// </summary>
internal sealed partial class RaftHostedService(
    RaftHost host,
    GrpcRaftTransport transport,
    IHostApplicationLifetime lifetime,
    ILogger<RaftHostedService> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await host.StartAsync(cancellationToken);
        _ = host.Completion.ContinueWith(
            completed =>
            {
                if (completed.IsFaulted)
                {
                    Log.HostFailed(logger, completed.Exception);
                    lifetime.StopApplication();
                }
            },
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await host.StopAsync(cancellationToken);
        await transport.DisposeAsync();
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 6200, EventName = "RaftHostFailed", Level = LogLevel.Critical, Message = "The Raft host stopped on an error; stopping the daemon")]
        public static partial void HostFailed(ILogger logger, Exception? exception);
    }
}
