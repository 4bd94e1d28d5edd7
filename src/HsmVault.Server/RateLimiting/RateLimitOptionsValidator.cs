using Microsoft.Extensions.Options;

namespace HsmVault.Server.RateLimiting;

/// <summary>Every rule on <see cref="RateLimitOptions"/>, each naming the setting to fix.</summary>
internal sealed class RateLimitOptionsValidator : IValidateOptions<RateLimitOptions>
{
    public ValidateOptionsResult Validate(string? name, RateLimitOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        Rate(nameof(RateLimitOptions.UserOpsPerSec), options.UserOpsPerSec);
        Burst(nameof(RateLimitOptions.UserBurstOps), options.UserBurstOps);
        Rate(nameof(RateLimitOptions.UnauthenticatedOpsPerSec), options.UnauthenticatedOpsPerSec);
        Burst(nameof(RateLimitOptions.UnauthenticatedBurstOps), options.UnauthenticatedBurstOps);
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);

        void Rate(string setting, double value)
        {
            if (!TokenBuckets.IsValidRate(value))
            {
                failures.Add($"{RateLimitOptions.SectionName}:{setting} must be a positive number of calls per second; got {value}");
            }
        }

        void Burst(string setting, int value)
        {
            if (value < 1)
            {
                failures.Add($"{RateLimitOptions.SectionName}:{setting} must be at least 1; got {value}");
            }
        }
    }
}
