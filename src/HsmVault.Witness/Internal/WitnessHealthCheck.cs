using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace HsmVault.Witness.Internal;

/// <summary>Serving once the log is open (start-up opens the token key and the log before it listens).</summary>
internal sealed class WitnessHealthCheck(WitnessLog log) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(HealthCheckResult.Healthy($"{log.TreeSize} entries"));
}
