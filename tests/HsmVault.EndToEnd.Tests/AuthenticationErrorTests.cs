using System.Security.Cryptography;
using Grpc.Core;
using HsmVault.Cli.Commands;
using HsmVault.Protocol.V1;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace HsmVault.EndToEnd.Tests;

/// <summary>
/// A refused token is a gRPC UNAUTHENTICATED status whose message says what is wrong with it,
/// read by a real gRPC client (not a bare HTTP 401); tokens must expire, and may live at most
/// their tenant's maximum lifetime (one day unless configured).
/// </summary>
public sealed class AuthenticationErrorTests : DaemonTest
{
    private static readonly DateTime Now = DateTime.UtcNow;

    public static TheoryData<string, string> Refusals => new()
    {
        { "no header", "missing 'authorization' header" },
        { "basic scheme", "must be 'Bearer <JWT>'" },
        { "garbage", "not a well-formed JWT" },
        { "expired", "expired at" },
        { "not yet valid", "not valid before" },
        { "no exp", "no 'exp' claim" },
        { "exp in 9999", "lives too long: exp - iat" },
        { "two days without iat", "lives too long: exp - now" },
        { "iat in the future", "'iat'" },
        { "unknown issuer", "('iss': 'stranger-tenant') is not a tenant of this fleet" },
        { "signed by another key", "signature does not verify with the key of tenant 'e2e-tenant'" },
        { "unsigned", "not signed" },
        { "wrong audience", "('aud': 'another-fleet') must be this fleet's id 'e2e-fleet'" },
        { "no subject", "'sub'" },
        { "subject with a control character", "does not name a usable user ('iss' is the tenant, 'sub' the user id): the user id contains control characters" },
        { "subject over 256 bytes", "does not name a usable user ('iss' is the tenant, 'sub' the user id): the user id is longer than 256 bytes of UTF-8" },
    };

    [Theory]
    [MemberData(nameof(Refusals))]
    public async Task Call_WithBadToken_IsUnauthenticated_WithTheReasonInTheStatus(string kind, string reason)
    {
        var headers = Headers(Token(kind));

        var error = await Assert.ThrowsAsync<RpcException>(async () =>
            await Daemon.CreateRawClient().GetStatusAsync(new GetStatusRequest(), headers));

        Assert.Equal(StatusCode.Unauthenticated, error.StatusCode);
        Assert.Contains(reason, error.Status.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain("HTTP status code", error.Status.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain("(null)", error.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Token_LivingJustUnderADay_IsAccepted()
    {
        var token = Sign(Setup.TenantKey, DaemonSetup.Tenant, "alice", DaemonSetup.FleetId, issuedAt: Now, expires: Now.AddHours(23.9));

        var status = await Daemon.CreateRawClient().GetStatusAsync(new GetStatusRequest(), Headers(token));

        Assert.False(status.Registered);
    }

    [Fact]
    public async Task Token_WithoutIatLivingUnderADay_IsAccepted()
    {
        var token = Sign(Setup.TenantKey, DaemonSetup.Tenant, "alice", DaemonSetup.FleetId, issuedAt: null, expires: Now.AddHours(12));

        var status = await Daemon.CreateRawClient().GetStatusAsync(new GetStatusRequest(), Headers(token));

        Assert.False(status.Registered);
    }

    [Fact]
    public async Task MaxTokenLifetime_IsPerTenant()
    {
        await Daemon.StopAsync();
        Daemon.Settings["HsmVault:Auth:Tenants:1:MaxTokenLifetime"] = "00:10:00";
        await Daemon.RestartAsync();
        var raw = Daemon.CreateRawClient();

        // Both tokens live 30 minutes: within the main tenant's day, beyond the other tenant's 10 minutes.
        var accepted = await raw.GetStatusAsync(new GetStatusRequest(), Setup.Headers("carol"));
        var error = await Assert.ThrowsAsync<RpcException>(async () =>
            await raw.GetStatusAsync(new GetStatusRequest(), Setup.Headers("carol", DaemonSetup.OtherTenant)));

        Assert.False(accepted.Registered);
        Assert.Equal(StatusCode.Unauthenticated, error.StatusCode);
        Assert.Contains("at most 600 s", error.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Refusal_OfAHostileIssuer_IsLoggedEscaped_NeverRaw()
    {
        // An issuer that tries to end the log line and forge an audit event, hidden behind a
        // right-to-left override, a zero-width space and quotes.
        const string hostile = "evil\u202E\u200B\"'\\\nAUDIT: record deleted";
        var token = DevelopmentTokens.Mint(Setup.TenantKey, hostile, "alice", DaemonSetup.FleetId, TimeSpan.FromMinutes(5));

        var error = await Assert.ThrowsAsync<RpcException>(async () =>
            await Daemon.CreateRawClient().GetStatusAsync(new GetStatusRequest(), Headers(token)));

        Assert.Equal(StatusCode.Unauthenticated, error.StatusCode);
        var refusals = Daemon.Logs.Events.Where(e => e.EventId.Id == 1100).Select(e => e.Message).ToList();
        var line = Assert.Single(refusals);
        Assert.Contains(@"evil\u202e\u200b\u0022\u0027\u005c\u000aAUDIT: record deleted", line, StringComparison.Ordinal);
        Assert.DoesNotContain(Daemon.Logs.Events, e => e.Message.Contains('\u202E', StringComparison.Ordinal) || e.Message.Contains('\n', StringComparison.Ordinal));
        Assert.DoesNotContain('\u202E', error.Status.Detail);
    }

    private static Metadata Headers(string? authorization) =>
        authorization is null ? [] : new Metadata { { "authorization", authorization.StartsWith("Basic ", StringComparison.Ordinal) ? authorization : "Bearer " + authorization } };

    private string? Token(string kind)
    {
        using var stranger = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var key = Setup.TenantKey;
        const string tenant = DaemonSetup.Tenant;
        const string fleet = DaemonSetup.FleetId;
        return kind switch
        {
            "no header" => null,
            "basic scheme" => "Basic YWxpY2U6cGFzc3dvcmQ=",
            "garbage" => "not.a.jwt",
            "expired" => Sign(key, tenant, "alice", fleet, Now.AddHours(-2), Now.AddHours(-1)),
            "not yet valid" => Sign(key, tenant, "alice", fleet, Now, Now.AddHours(2), notBefore: Now.AddHours(1)),
            "no exp" => Sign(key, tenant, "alice", fleet, Now, expires: null),
            "exp in 9999" => Sign(key, tenant, "alice", fleet, Now, new DateTime(9999, 1, 1, 0, 0, 0, DateTimeKind.Utc)),
            "two days without iat" => Sign(key, tenant, "alice", fleet, issuedAt: null, Now.AddDays(2)),
            "iat in the future" => Sign(key, tenant, "alice", fleet, Now.AddDays(300), Now.AddDays(300.5)),
            "unknown issuer" => Sign(key, "stranger-tenant", "alice", fleet, Now, Now.AddMinutes(5)),
            "signed by another key" => Sign(stranger, tenant, "alice", fleet, Now, Now.AddMinutes(5)),
            "unsigned" => Sign(null, tenant, "alice", fleet, Now, Now.AddMinutes(5)),
            "wrong audience" => Sign(key, tenant, "alice", "another-fleet", Now, Now.AddMinutes(5)),
            "no subject" => Sign(key, tenant, null, fleet, Now, Now.AddMinutes(5)),
            "subject with a control character" => Sign(key, tenant, "ali\u0007ce", fleet, Now, Now.AddMinutes(5)),
            "subject over 256 bytes" => Sign(key, tenant, new string('\u00e9', 129), fleet, Now, Now.AddMinutes(5)),
            _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
        };
    }

    /// <summary>A token with exactly the claims given (no defaults filled in), signed ES256 by <paramref name="key"/> (unsigned when null).</summary>
    private static string Sign(ECDsa? key, string issuer, string? subject, string audience, DateTime? issuedAt, DateTime? expires, DateTime? notBefore = null) =>
        new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false }.CreateToken(new SecurityTokenDescriptor
        {
            Issuer = issuer,
            Audience = audience,
            Claims = subject is null ? null : new Dictionary<string, object> { [JwtRegisteredClaimNames.Sub] = subject },
            IssuedAt = issuedAt,
            NotBefore = notBefore,
            Expires = expires,
            SigningCredentials = key is null ? null : new SigningCredentials(
                new ECDsaSecurityKey(key) { CryptoProviderFactory = new CryptoProviderFactory { CacheSignatureProviders = false } },
                SecurityAlgorithms.EcdsaSha256),
        });
}
