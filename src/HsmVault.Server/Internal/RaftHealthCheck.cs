using HsmVault.Consensus;
using HsmVault.Vault.State;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace HsmVault.Server.Internal;

/// <summary>
/// Healthy while the member knows a leader (itself or another), is not held back by its
/// rollback guard, and its state agrees with the fleet's. Otherwise unhealthy (NOT_SERVING): it then refuses writes and reads that
/// decide anything, so a load balancer should send clients elsewhere.
/// </summary>
internal sealed class RaftHealthCheck(RaftHost host, VaultStateMachine state) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (state.Divergence is { } divergence)
        {
            return Task.FromResult(HealthCheckResult.Unhealthy($"this member's state differs from the fleet's ({divergence}); it has stopped serving: see the README's disaster-recovery procedure"));
        }

        var status = host.Status;
        if (status is null)
        {
            return Task.FromResult(HealthCheckResult.Unhealthy("Raft has not started"));
        }

        if (status.IsBehindHighWaterMark)
        {
            return Task.FromResult(HealthCheckResult.Unhealthy($"the data folder is behind the token's high-water mark (term {status.Term}); catching up from the other members"));
        }

        return Task.FromResult(status.LeaderId is null
            ? HealthCheckResult.Unhealthy($"no leader known in term {status.Term}: this member cannot reach a majority")
            : HealthCheckResult.Healthy($"{status.Role} in term {status.Term}, leader {status.LeaderId}, applied {status.AppliedIndex}"));
    }
}
