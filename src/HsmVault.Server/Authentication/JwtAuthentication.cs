using System.Security.Claims;
using System.Security.Cryptography;
using HsmVault.Vault;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace HsmVault.Server.Authentication;

/// <summary>
/// Bearer-token authentication with ASP.NET Core's JWT handler: issuer = tenant, subject =
/// user id, audience = fleet id, signed by a configured tenant key (ES256 or RS256 only).
/// </summary>
public static class JwtAuthentication
{
    /// <summary>Registers JWT bearer validation against the configured tenants.</summary>
    public static IServiceCollection AddHsmVaultAuthentication(this IServiceCollection services)
    {
        services.AddAuthentication(JwtBearerDefaults.AuthenticationScheme).AddJwtBearer();
        services.AddOptions<JwtBearerOptions>(JwtBearerDefaults.AuthenticationScheme)
            .Configure<IOptions<AuthOptions>, IOptions<VaultOptions>>((jwt, auth, vault) =>
            {
                var tenants = auth.Value.Tenants.Select(tenant => (tenant.Issuer, Key: LoadKey(tenant))).ToList();
                jwt.MapInboundClaims = false;
                jwt.TokenValidationParameters = new TokenValidationParameters
                {
                    ValidateIssuer = true,
                    ValidIssuers = tenants.Select(t => t.Issuer).ToList(),
                    ValidateAudience = true,
                    ValidAudience = vault.Value.FleetId,
                    ValidateLifetime = true,
                    RequireExpirationTime = true,
                    RequireSignedTokens = true,
                    ClockSkew = auth.Value.ClockSkew,
                    ValidAlgorithms = [SecurityAlgorithms.EcdsaSha256, SecurityAlgorithms.RsaSha256],
                    // Each tenant's key verifies only that tenant's tokens.
                    IssuerSigningKeyResolver = (_, token, _, _) =>
                        tenants.Where(t => t.Issuer == ((JsonWebToken)token).Issuer).Select(t => t.Key),
                    NameClaimType = JwtRegisteredClaimNames.Sub,
                };
            });
        services.AddAuthorization();
        return services;
    }

    /// <summary>The caller's identity from a validated token.</summary>
    /// <exception cref="VaultException">The token lacks an issuer or subject.</exception>
    public static UserIdentity CallerOf(ClaimsPrincipal principal)
    {
        ArgumentNullException.ThrowIfNull(principal);
        var issuer = principal.FindFirst(JwtRegisteredClaimNames.Iss)?.Value;
        var subject = principal.FindFirst(JwtRegisteredClaimNames.Sub)?.Value;
        if (string.IsNullOrEmpty(issuer) || string.IsNullOrEmpty(subject))
        {
            throw new VaultException(VaultError.Unauthenticated, "the bearer token must carry 'iss' (tenant) and 'sub' (user id)");
        }

        try
        {
            return new UserIdentity(issuer, subject);
        }
        catch (VaultException e)
        {
            throw new VaultException(VaultError.Unauthenticated, $"the bearer token does not name a usable user: {e.Message}", e);
        }
    }

    private static SecurityKey LoadKey(TenantOptions tenant)
    {
        string pem;
        try
        {
            pem = File.ReadAllText(tenant.PublicKeyFile);
        }
        catch (IOException e)
        {
            throw new OptionsValidationException(nameof(AuthOptions), typeof(AuthOptions),
                [$"tenant '{tenant.Issuer}': cannot read public key file '{tenant.PublicKeyFile}': {e.Message}"]);
        }

        if (pem.Contains("PRIVATE KEY", StringComparison.Ordinal))
        {
            throw new OptionsValidationException(nameof(AuthOptions), typeof(AuthOptions),
                [$"tenant '{tenant.Issuer}': '{tenant.PublicKeyFile}' holds a private key; the vault needs only the tenant's public key"]);
        }

        if (pem.Contains("BEGIN RSA PUBLIC KEY", StringComparison.Ordinal))
        {
            var rsa = RSA.Create();
            rsa.ImportFromPem(pem);
            return new RsaSecurityKey(rsa) { KeyId = tenant.Issuer };
        }

        try
        {
            var ec = ECDsa.Create();
            ec.ImportFromPem(pem);
            return new ECDsaSecurityKey(ec) { KeyId = tenant.Issuer };
        }
        catch (CryptographicException)
        {
            var rsa = RSA.Create();
            rsa.ImportFromPem(pem);
            return new RsaSecurityKey(rsa) { KeyId = tenant.Issuer };
        }
    }
}
