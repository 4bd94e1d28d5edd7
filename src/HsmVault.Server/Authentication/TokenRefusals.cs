using System.Globalization;
using HsmVault.Server.Internal;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace HsmVault.Server.Authentication;

/// <summary>A token refused by one of the vault's own rules (e.g. its lifetime), with the reason.</summary>
internal sealed class TokenRefusedException(string reason) : Exception(reason);

/// <summary>
/// Turns why the JWT handler refused a call into a sentence a client developer can act on. The
/// caller's claims (issuer, audience) are quoted only escaped (<see cref="CallerText.Escape"/>),
/// as the sentence is also logged.
/// </summary>
internal static class TokenRefusals
{
    private const string BearerPrefix = "Bearer ";

    /// <summary>The reason for the refusal of a call with <paramref name="authorization"/>.</summary>
    /// <param name="failure">The handler's failure; null when it found no bearer token at all.</param>
    /// <param name="authorization">The call's authorization header(s).</param>
    /// <param name="fleetId">The audience tokens must name.</param>
    /// <param name="issuers">The tenants' issuers.</param>
    public static string Describe(Exception? failure, string? authorization, string fleetId, IReadOnlyCollection<string> issuers)
    {
        if (failure is null)
        {
            return string.IsNullOrEmpty(authorization)
                ? "missing 'authorization' header: send 'authorization: Bearer <JWT>' with a token from your tenant"
                : authorization.StartsWith(BearerPrefix, StringComparison.OrdinalIgnoreCase)
                    ? "the bearer token is empty: send 'authorization: Bearer <JWT>'"
                    : "the 'authorization' header must be 'Bearer <JWT>'";
        }

        var token = TryRead(authorization);
        return failure switch
        {
            TokenRefusedException refused => refused.Message,
            SecurityTokenMalformedException or SecurityTokenDecryptionFailedException or ArgumentException =>
                "the bearer token is not a well-formed JWT (three base64url parts: header.payload.signature)",
            SecurityTokenNoExpirationException =>
                "the bearer token has no 'exp' claim; every token must expire (see the tenant's maximum token lifetime)",
            SecurityTokenExpiredException expired =>
                $"the bearer token expired at {Format(expired.Expires)}; get a fresh one from your tenant",
            SecurityTokenNotYetValidException early =>
                $"the bearer token is not valid before {Format(early.NotBefore)} ('nbf'); check the issuer's clock",
            SecurityTokenInvalidLifetimeException =>
                "the bearer token's 'nbf' is after its 'exp'",
            SecurityTokenInvalidAudienceException =>
                $"the bearer token's audience ('aud': {Quote(token?.Audiences)}) must be this fleet's id '{CallerText.Escape(fleetId)}'",
            // The handler checks the signature before the issuer, so a stranger's token fails on
            // its key; the stranger is the actionable part.
            SecurityTokenInvalidIssuerException or SecurityTokenInvalidSignatureException when token is not null && !issuers.Contains(token.Issuer) =>
                $"the bearer token's issuer ('iss': '{CallerText.Escape(token?.Issuer)}') is not a tenant of this fleet",
            SecurityTokenInvalidAlgorithmException =>
                $"the bearer token is signed with '{CallerText.Escape(token?.Alg)}'; tenants sign with ES256 or RS256",
            SecurityTokenInvalidSignatureException when token is not null && (token.Alg == "none" || string.IsNullOrEmpty(token.EncodedSignature)) =>
                "the bearer token is not signed; tenants sign with ES256 or RS256",
            SecurityTokenInvalidSignatureException =>
                $"the bearer token's signature does not verify with the key of tenant '{CallerText.Escape(token?.Issuer)}'",
            _ => "the bearer token is not valid: " + CallerText.Escape(failure.GetType().Name),
        };
    }

    private static JsonWebToken? TryRead(string? authorization)
    {
        if (authorization is null || !authorization.StartsWith(BearerPrefix, StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        try
        {
            return new JsonWebToken(authorization[BearerPrefix.Length..].Trim());
        }
        catch (ArgumentException)
        {
            // Includes SecurityTokenMalformedException: nothing to quote from it.
            return null;
        }
    }

    private static string Quote(IEnumerable<string>? values) =>
        values is null || !values.Any() ? "none" : string.Join(", ", values.Select(v => $"'{CallerText.Escape(v)}'"));

    private static string Format(DateTime instant) => instant.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);
}
