using System.Security.Cryptography;
using HsmVault.Cli.Commands;
using HsmVault.Server.Authentication;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace HsmVault.EndToEnd.Tests;

/// <summary>The JWT handler's memory of accepted tokens: reused only for the same bytes, and never past the token's exp.</summary>
public sealed class ValidatedTokenCacheTests : IDisposable
{
    private const string Fleet = "cache-fleet";
    private readonly ECDsa _tenantKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    private readonly ManualClock _clock = new(DateTimeOffset.UtcNow);

    [Fact]
    public async Task SameToken_SecondValidation_IsRememberedWithTheSameClaims()
    {
        var handler = new CachingJsonWebTokenHandler(_clock);
        var token = DevelopmentTokens.Mint(_tenantKey, "tenant", "alice", Fleet, TimeSpan.FromMinutes(10));

        var first = await handler.ValidateTokenAsync(token, Parameters());
        var second = await handler.ValidateTokenAsync(token, Parameters());

        Assert.True(first.IsValid);
        Assert.True(second.IsValid);
        Assert.Equal(1, handler.Count);
        Assert.Equal("alice", second.ClaimsIdentity.FindFirst(JwtRegisteredClaimNames.Sub)?.Value);
        Assert.NotSame(first.ClaimsIdentity, second.ClaimsIdentity);
    }

    [Fact]
    public async Task TokenWithAlteredSignature_AfterTheOriginalWasAccepted_IsRefused()
    {
        var handler = new CachingJsonWebTokenHandler(_clock);
        var token = DevelopmentTokens.Mint(_tenantKey, "tenant", "alice", Fleet, TimeSpan.FromMinutes(10));
        Assert.True((await handler.ValidateTokenAsync(token, Parameters())).IsValid);
        var lastDot = token.LastIndexOf('.');
        var signature = Base64UrlEncoder.DecodeBytes(token[(lastDot + 1)..]);
        signature[^1] ^= 1;
        var altered = token[..(lastDot + 1)] + Base64UrlEncoder.Encode(signature);

        var result = await handler.ValidateTokenAsync(altered, Parameters());

        Assert.False(result.IsValid);
        Assert.Equal(1, handler.Count);
    }

    [Fact]
    public async Task RememberedToken_PastItsExpiry_IsNotTakenFromMemory()
    {
        var handler = new CachingJsonWebTokenHandler(_clock);
        var token = DevelopmentTokens.Mint(_tenantKey, "tenant", "alice", Fleet, TimeSpan.FromMinutes(10));
        Assert.True((await handler.ValidateTokenAsync(token, Parameters())).IsValid);

        // The handler's own lifetime check reads the real clock, under which the token is still valid; the memory
        // must still drop it at exp by its own clock, and not remember it again.
        _clock.Now += TimeSpan.FromMinutes(11);
        await handler.ValidateTokenAsync(token, Parameters());

        Assert.Equal(0, handler.Count);
    }

    [Fact]
    public async Task FullMemory_StillValidates_WithoutRemembering()
    {
        var handler = new CachingJsonWebTokenHandler(_clock, capacity: 1);
        var alice = DevelopmentTokens.Mint(_tenantKey, "tenant", "alice", Fleet, TimeSpan.FromMinutes(10));
        var bob = DevelopmentTokens.Mint(_tenantKey, "tenant", "bob", Fleet, TimeSpan.FromMinutes(10));
        Assert.True((await handler.ValidateTokenAsync(alice, Parameters())).IsValid);

        var result = await handler.ValidateTokenAsync(bob, Parameters());

        Assert.True(result.IsValid);
        Assert.Equal("bob", result.ClaimsIdentity.FindFirst(JwtRegisteredClaimNames.Sub)?.Value);
        Assert.Equal(1, handler.Count);
    }

    [Fact]
    public async Task RefusedToken_IsNotRemembered()
    {
        var handler = new CachingJsonWebTokenHandler(_clock);
        var token = DevelopmentTokens.Mint(_tenantKey, "tenant", "alice", "another-fleet", TimeSpan.FromMinutes(10));

        Assert.False((await handler.ValidateTokenAsync(token, Parameters())).IsValid);
        Assert.False((await handler.ValidateTokenAsync(token, Parameters())).IsValid);
        Assert.Equal(0, handler.Count);
    }

    public void Dispose() => _tenantKey.Dispose();

    private TokenValidationParameters Parameters() => new()
    {
        ValidIssuer = "tenant",
        ValidAudience = Fleet,
        RequireExpirationTime = true,
        RequireSignedTokens = true,
        ValidAlgorithms = [SecurityAlgorithms.EcdsaSha256],
        IssuerSigningKey = new ECDsaSecurityKey(_tenantKey),
    };

    private sealed class ManualClock(DateTimeOffset start) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = start;

        public override DateTimeOffset GetUtcNow() => Now;
    }
}
