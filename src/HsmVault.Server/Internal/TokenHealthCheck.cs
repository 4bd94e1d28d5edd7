using System.Security.Cryptography;
using System.Text;
using HsmVault.Hsm;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace HsmVault.Server.Internal;

/// <summary>
/// Healthy when the token answers a real keyed operation (an OPRF-seed HMAC over a fixed
/// label, wiped at once), not merely when its slot is present.
/// </summary>
internal sealed class TokenHealthCheck(IVaultToken token) : IHealthCheck
{
    private static readonly byte[] ProbeInfo = Encoding.ASCII.GetBytes("hsmvault/health-probe");

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        Span<byte> probe = stackalloc byte[32];
        try
        {
            token.ExpandOprfSeed(ProbeInfo, probe);
            return Task.FromResult(HealthCheckResult.Healthy($"token '{token.Description.Label}' answers"));
        }
        catch (TokenUnavailableException e)
        {
            return Task.FromResult(HealthCheckResult.Unhealthy($"token '{token.Description.Label}' is unavailable", e));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(probe);
        }
    }
}
