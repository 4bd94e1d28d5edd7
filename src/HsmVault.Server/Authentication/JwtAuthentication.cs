using System.Security.Claims;
using System.Security.Cryptography;
using Grpc.Core;
using HsmVault.Server.Internal;
using HsmVault.Vault;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace HsmVault.Server.Authentication;

/// <summary>
/// Bearer-token authentication with ASP.NET Core's JWT handler: issuer = tenant, subject =
/// user id, audience = fleet id, signed by a configured tenant key (ES256 or RS256 only).
/// </summary>
public static partial class JwtAuthentication
{
    /// <summary>Registers JWT bearer validation against the configured tenants.</summary>
    public static IServiceCollection AddHsmVaultAuthentication(this IServiceCollection services)
    {
        services.AddOptions<AuthOptions>().BindConfiguration(AuthOptions.SectionName).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<AuthOptions>, AuthOptionsValidator>());
        services.AddAuthentication(JwtBearerDefaults.AuthenticationScheme).AddJwtBearer();
        services.AddOptions<JwtBearerOptions>(JwtBearerDefaults.AuthenticationScheme)
            .Configure<IOptions<AuthOptions>, IOptions<VaultOptions>>((jwt, auth, vault) =>
            {
                var tenants = auth.Value.Tenants.Select(tenant => (Options: tenant, Key: LoadKey(tenant))).ToList();
                var fleetId = vault.Value.FleetId;
                var clockSkew = auth.Value.ClockSkew;
                var issuers = tenants.Select(t => t.Options.Issuer).ToList();
                // Accepted tokens are remembered until their expiry, so a recovery's second call (and every later
                // call with the same token) skips the signature check; see CachingJsonWebTokenHandler for why that
                // weakens nothing. Set before MapInboundClaims, which applies to the handlers present.
                jwt.TokenHandlers.Clear();
                jwt.TokenHandlers.Add(new CachingJsonWebTokenHandler(TimeProvider.System));
                jwt.MapInboundClaims = false;
                jwt.TokenValidationParameters = new TokenValidationParameters
                {
                    ValidateIssuer = true,
                    ValidIssuers = issuers,
                    ValidateAudience = true,
                    ValidAudience = fleetId,
                    ValidateLifetime = true,
                    RequireExpirationTime = true,
                    RequireSignedTokens = true,
                    ClockSkew = clockSkew,
                    ValidAlgorithms = [SecurityAlgorithms.EcdsaSha256, SecurityAlgorithms.RsaSha256],
                    // Each tenant's key verifies only that tenant's tokens.
                    IssuerSigningKeyResolver = (_, token, _, _) =>
                        tenants.Where(t => t.Options.Issuer == ((JsonWebToken)token).Issuer).Select(t => t.Key),
                    NameClaimType = JwtRegisteredClaimNames.Sub,
                };
                jwt.Events = new JwtBearerEvents
                {
                    OnTokenValidated = context =>
                    {
                        var token = (JsonWebToken)context.SecurityToken;
                        var tenant = tenants.First(t => t.Options.Issuer == token.Issuer).Options;
                        if (TokenLifetime.Refusal(token, tenant.MaxTokenLifetime, clockSkew, context.Options.TimeProvider ?? TimeProvider.System) is { } refusal)
                        {
                            context.Fail(new TokenRefusedException(refusal));
                        }

                        return Task.CompletedTask;
                    },
                    OnChallenge = context =>
                    {
                        // Answer as gRPC does: UNAUTHENTICATED with a reason a person can act on,
                        // not the handler's bare HTTP 401 with the reason hidden in WWW-Authenticate.
                        context.HandleResponse();
                        var reason = TokenRefusals.Describe(context.AuthenticateFailure, context.Request.Headers.Authorization, fleetId, issuers);
                        var logger = context.HttpContext.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(JwtAuthentication));
                        if (logger.IsEnabled(LogLevel.Information))
                        {
                            var path = CallerText.Escape(context.Request.Path.Value);
                            var remote = context.HttpContext.Connection.RemoteIpAddress?.ToString() ?? "(unknown)";
                            Log.Refused(logger, path, remote, reason);
                        }

                        return GrpcStatusResponse.WriteAsync(context.Response, StatusCode.Unauthenticated, reason);
                    },
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

        return UserIdentity.TryCreate(issuer, subject, out var caller, out var problem)
            ? caller
            : throw new VaultException(VaultError.Unauthenticated, $"the bearer token does not name a usable user ('iss' is the tenant, 'sub' the user id): {problem}");
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

    private static partial class Log
    {
        // Information, not Warning: a refused token is the caller's mistake, and anyone can send
        // one. The reason never holds a caller's raw claim (TokenRefusals escapes them).
        [LoggerMessage(EventId = 1100, EventName = "AuthenticationRefused", Level = LogLevel.Information,
            Message = "Refused an unauthenticated call to {Path} from {Remote}: {Reason}")]
        public static partial void Refused(ILogger logger, string path, string remote, string reason);
    }
}
