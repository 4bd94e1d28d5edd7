using System.ComponentModel.DataAnnotations;

namespace HsmVault.Server.Authentication;

/// <summary>
/// Which tenants may call the vault, bound from <c>HsmVault:Auth</c>. A tenant is a JWT
/// issuer with its verification keys; its tokens must name the fleet id as audience.
/// </summary>
public sealed class AuthOptions
{
    /// <summary>Configuration section these options bind from.</summary>
    public const string SectionName = "HsmVault:Auth";

    /// <summary>The tenants whose tokens are accepted.</summary>
    [MinLength(1, ErrorMessage = "HsmVault:Auth:Tenants must list at least one tenant (Issuer and PublicKeyFile)")]
    public List<TenantOptions> Tenants { get; set; } = [];

    /// <summary>Clock skew tolerated on token lifetimes.</summary>
    public TimeSpan ClockSkew { get; set; } = TimeSpan.FromSeconds(30);
}

/// <summary>One tenant: the issuer name in its tokens and the public key that signs them.</summary>
public sealed class TenantOptions
{
    /// <summary>The <c>iss</c> claim of the tenant's tokens.</summary>
    [Required]
    public string Issuer { get; set; } = "";

    /// <summary>PEM file with the tenant's public key (EC P-256 for ES256, or RSA for RS256).</summary>
    [Required]
    public string PublicKeyFile { get; set; } = "";
}
