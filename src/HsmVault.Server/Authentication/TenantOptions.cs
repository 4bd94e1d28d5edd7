namespace HsmVault.Server.Authentication;

/// <summary>
/// Which tenants may call the vault, bound from <c>HsmVault:Auth</c>. A tenant is a JWT
/// issuer with its verification keys; its tokens must name the fleet id as audience.
/// Validated by <see cref="AuthOptionsValidator"/>.
/// </summary>
public sealed class AuthOptions
{
    /// <summary>Configuration section these options bind from.</summary>
    public const string SectionName = "HsmVault:Auth";

    /// <summary>The tenants whose tokens are accepted.</summary>
    public List<TenantOptions> Tenants { get; set; } = [];

    /// <summary>Clock skew tolerated on token lifetimes (<c>exp</c>, <c>nbf</c>, <c>iat</c>).</summary>
    public TimeSpan ClockSkew { get; set; } = TimeSpan.FromSeconds(30);
}

/// <summary>One tenant: the issuer name in its tokens, the public key that signs them, and its limits.</summary>
public sealed class TenantOptions
{
    /// <summary>Default of <see cref="MaxTokenLifetime"/>: one day, as Juicebox allows.</summary>
    public static readonly TimeSpan DefaultMaxTokenLifetime = TimeSpan.FromDays(1);

    /// <summary>The <c>iss</c> claim of the tenant's tokens.</summary>
    public string Issuer { get; set; } = "";

    /// <summary>PEM file with the tenant's public key (EC P-256 for ES256, or RSA for RS256).</summary>
    public string PublicKeyFile { get; set; } = "";

    /// <summary>
    /// Longest lifetime accepted for the tenant's tokens: <c>exp - iat</c>, or <c>exp - now</c>
    /// for a token without <c>iat</c>. A stolen token is then worth at most this long.
    /// </summary>
    public TimeSpan MaxTokenLifetime { get; set; } = DefaultMaxTokenLifetime;

    /// <summary>Sustained calls per second that this member serves for all of the tenant's users together.</summary>
    public double CapacityOpsPerSec { get; set; } = 1000;

    /// <summary>Calls the tenant may make at once above the sustained rate (the token bucket's size).</summary>
    public int BurstOps { get; set; } = 2000;
}
