using Microsoft.Extensions.Options;

namespace HsmVault.Server.Authentication;

/// <summary>Every rule on <see cref="AuthOptions"/>, each with a message that names the setting to fix.</summary>
internal sealed class AuthOptionsValidator : IValidateOptions<AuthOptions>
{
    public ValidateOptionsResult Validate(string? name, AuthOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        if (options.Tenants.Count == 0)
        {
            failures.Add("HsmVault:Auth:Tenants must list at least one tenant (Issuer and PublicKeyFile)");
        }

        if (options.ClockSkew < TimeSpan.Zero)
        {
            failures.Add($"HsmVault:Auth:ClockSkew must not be negative; got {options.ClockSkew}");
        }

        for (var i = 0; i < options.Tenants.Count; i++)
        {
            var tenant = options.Tenants[i];
            var setting = $"HsmVault:Auth:Tenants:{i}";
            if (string.IsNullOrWhiteSpace(tenant.Issuer))
            {
                failures.Add($"{setting}:Issuer is required");
            }

            if (string.IsNullOrWhiteSpace(tenant.PublicKeyFile))
            {
                failures.Add($"{setting}:PublicKeyFile is required");
            }

            if (tenant.MaxTokenLifetime <= TimeSpan.Zero)
            {
                failures.Add($"{setting}:MaxTokenLifetime must be positive; got {tenant.MaxTokenLifetime}");
            }

            if (!(tenant.CapacityOpsPerSec > 0) || double.IsInfinity(tenant.CapacityOpsPerSec))
            {
                failures.Add($"{setting}:CapacityOpsPerSec must be a positive number of calls per second; got {tenant.CapacityOpsPerSec}");
            }

            if (tenant.BurstOps < 1)
            {
                failures.Add($"{setting}:BurstOps must be at least 1; got {tenant.BurstOps}");
            }
        }

        if (options.Tenants.Select(t => t.Issuer).Distinct(StringComparer.Ordinal).Count() != options.Tenants.Count)
        {
            failures.Add("HsmVault:Auth:Tenants lists an issuer twice; each tenant is listed once, with its one public key file");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
