using System.Globalization;
using Microsoft.IdentityModel.JsonWebTokens;

namespace HsmVault.Server.Authentication;

/// <summary>
/// The rule on how long a tenant's token may live, on top of the JWT handler's own checks
/// (<c>exp</c> required and not passed, <c>nbf</c> reached, both with the clock skew).
/// </summary>
internal static class TokenLifetime
{
    /// <summary>
    /// Why <paramref name="token"/> lives too long, or null when it does not. Its lifetime is
    /// <c>exp - iat</c>; without <c>iat</c>, <c>exp - now</c>. An <c>iat</c> in the future (beyond
    /// the skew) is refused too: otherwise a token could claim to be issued tomorrow and so live
    /// a day longer than allowed. So an accepted token never expires later than
    /// now + skew + <paramref name="maxLifetime"/>. <c>nbf</c> plays no part: a token not yet
    /// valid is still a credential for its whole span up to <c>exp</c>.
    /// </summary>
    public static string? Refusal(JsonWebToken token, TimeSpan maxLifetime, TimeSpan clockSkew, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(token);
        ArgumentNullException.ThrowIfNull(time);
        var now = time.GetUtcNow().UtcDateTime;
        var expires = token.ValidTo;
        var hasIssuedAt = token.TryGetPayloadValue<long>(JwtRegisteredClaimNames.Iat, out _);
        if (hasIssuedAt && token.IssuedAt > now + clockSkew)
        {
            return $"the bearer token's 'iat' ({Format(token.IssuedAt)}) is in the future; check the issuer's clock";
        }

        var start = hasIssuedAt ? token.IssuedAt : now;
        var lifetime = expires - start;
        if (lifetime <= maxLifetime)
        {
            return null;
        }

        var measured = hasIssuedAt ? "exp - iat" : "exp - now (the token has no 'iat')";
        return $"the bearer token lives too long: {measured} is {Describe(lifetime)}, and tenant tokens may live at most {Describe(maxLifetime)}";
    }

    private static string Format(DateTime instant) => instant.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    private static string Describe(TimeSpan span) =>
        span.TotalDays >= 2 ? string.Create(CultureInfo.InvariantCulture, $"{span.TotalDays:0.#} days")
        : string.Create(CultureInfo.InvariantCulture, $"{(long)span.TotalSeconds} s");
}
