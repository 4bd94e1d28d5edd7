namespace HsmVault.Server.RateLimiting;

/// <summary>
/// Token-bucket limits that this member enforces on its own, bound from <c>HsmVault:RateLimits</c>.
/// Each tenant's own limit is <see cref="Authentication.TenantOptions.CapacityOpsPerSec"/> and
/// <see cref="Authentication.TenantOptions.BurstOps"/>. Validated by <see cref="RateLimitOptionsValidator"/>.
/// </summary>
public sealed class RateLimitOptions
{
    /// <summary>Configuration section these options bind from.</summary>
    public const string SectionName = "HsmVault:RateLimits";

    /// <summary>
    /// Sustained calls per second of one user (tenant and subject). A person registers or
    /// recovers with a handful of calls; fractions such as 0.1 are allowed.
    /// </summary>
    public double UserOpsPerSec { get; set; } = 10;

    /// <summary>Calls one user may make at once above the sustained rate.</summary>
    public int UserBurstOps { get; set; } = 100;

    /// <summary>
    /// Sustained calls per second from one remote address without a valid token: GetFleetInfo,
    /// health checks, and calls whose token is refused (each costs a signature check).
    /// </summary>
    public double UnauthenticatedOpsPerSec { get; set; } = 20;

    /// <summary>Unauthenticated calls one remote address may make at once above the sustained rate.</summary>
    public int UnauthenticatedBurstOps { get; set; } = 100;
}
