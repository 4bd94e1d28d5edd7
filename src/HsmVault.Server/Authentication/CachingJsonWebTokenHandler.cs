using System.Collections.Concurrent;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace HsmVault.Server.Authentication;

/// <summary>
/// The JWT handler with a memory of the tokens it has already accepted, so that the second call of a
/// recovery (and every later call with the same token) does not verify the same ES256 or RS256 signature
/// again (about 0.1 ms each).
/// </summary>
/// <remarks>
/// Why this weakens nothing: what the handler decides about a token depends on the token's exact bytes, the
/// validation parameters (fixed for the life of the process: tenants and their keys, the fleet as audience,
/// algorithms) and the clock. Only acceptances are remembered, keyed by the SHA-256 of the token's bytes, so a
/// token that differs in one bit is validated in full, and a refusal is always decided again. Of the clock's
/// parts, <c>nbf</c> and <c>iat</c> only become more true as time passes; <c>exp</c> is the one that turns an
/// accepted token into a refused one, so a remembered acceptance lasts until the token's own <c>exp</c> — without
/// the clock skew the handler allows, so never longer than a full validation would accept it — and then the
/// token is validated again (and refused). The rules applied after validation (the lifetime cap,
/// <see cref="TokenLifetime"/>) run on every call, cached or not. Every hit gets its own copy of the identity, so
/// no request can change what another sees. The memory is bounded: when full, expired entries go, and if it is
/// still full the token is validated without being remembered.
/// </remarks>
internal sealed class CachingJsonWebTokenHandler(TimeProvider time, int capacity = CachingJsonWebTokenHandler.DefaultCapacity) : JsonWebTokenHandler
{
    /// <summary>Tokens remembered at most: each entry holds the parsed token and its claims, about a kilobyte.</summary>
    public const int DefaultCapacity = 10_000;

    private readonly ConcurrentDictionary<string, Accepted> _accepted = new(StringComparer.Ordinal);

    /// <summary>How many tokens are remembered now (tests).</summary>
    internal int Count => _accepted.Count;

    /// <inheritdoc/>
    public override async Task<TokenValidationResult> ValidateTokenAsync(string token, TokenValidationParameters validationParameters)
    {
        ArgumentNullException.ThrowIfNull(token);
        var key = Key(token);
        var now = time.GetUtcNow().UtcDateTime;
        if (_accepted.TryGetValue(key, out var accepted))
        {
            if (now < accepted.Expires)
            {
                return new TokenValidationResult
                {
                    IsValid = true,
                    SecurityToken = accepted.Token,
                    ClaimsIdentity = accepted.Identity.Clone(),
                    Issuer = accepted.Token.Issuer,
                    TokenType = accepted.Token.Typ,
                };
            }

            _accepted.TryRemove(key, out _);
        }

        var result = await base.ValidateTokenAsync(token, validationParameters).ConfigureAwait(false);
        if (result.IsValid && result.SecurityToken is JsonWebToken parsed && result.ClaimsIdentity is { } identity
            && parsed.ValidTo > now && HasRoom(now))
        {
            _accepted[key] = new Accepted(parsed, identity.Clone(), parsed.ValidTo);
        }

        return result;
    }

    private bool HasRoom(DateTime now)
    {
        if (_accepted.Count < capacity)
        {
            return true;
        }

        foreach (var (key, entry) in _accepted)
        {
            if (entry.Expires <= now)
            {
                _accepted.TryRemove(key, out _);
            }
        }

        return _accepted.Count < capacity;
    }

    private static string Key(string token)
    {
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(Encoding.UTF8.GetBytes(token), hash);
        return Convert.ToBase64String(hash);
    }

    private sealed record Accepted(JsonWebToken Token, ClaimsIdentity Identity, DateTime Expires);
}
