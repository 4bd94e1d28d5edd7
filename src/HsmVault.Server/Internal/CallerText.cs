using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace HsmVault.Server.Internal;

/// <summary>
/// How a caller's own words (a JWT's issuer or subject, an unverified token's claims) may appear
/// in a log line or a status message: never raw. A subject with a newline, U+202E (right-to-left
/// override), a zero-width character or a quote could otherwise forge or disguise a log line,
/// e.g. a line that reads like an audit event.
/// </summary>
internal static class CallerText
{
    /// <summary>Longest escaped text kept; the rest is cut and marked, so a 16 KiB claim cannot flood a log.</summary>
    private const int MaxChars = 128;

    /// <summary>
    /// Printable ASCII as is, except <c>"</c>, <c>'</c> and <c>\</c>; every other UTF-16 unit
    /// (controls, bidi overrides, zero-width and all non-ASCII characters) as <c>\uXXXX</c>.
    /// </summary>
    public static string Escape(string? text)
    {
        if (text is null)
        {
            return "(none)";
        }

        var escaped = new StringBuilder(Math.Min(text.Length, MaxChars) + 8);
        foreach (var c in text)
        {
            if (escaped.Length >= MaxChars)
            {
                escaped.Append("...(").Append(text.Length.ToString(CultureInfo.InvariantCulture)).Append(" chars)");
                break;
            }

            if (c is >= ' ' and <= '~' and not ('"' or '\'' or '\\'))
            {
                escaped.Append(c);
            }
            else
            {
                escaped.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
            }
        }

        return escaped.ToString();
    }

    /// <summary>
    /// A short stable pseudonym of a user for logs: the first 12 hex digits of SHA-256 over the
    /// tenant and the subject (length-prefixed, so ("a", "bc") and ("ab", "c") differ). It lets an
    /// operator correlate lines of one user without the log naming the user.
    /// </summary>
    public static string UserHash(string tenant, string subject)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        ArgumentNullException.ThrowIfNull(subject);
        var input = Encoding.UTF8.GetBytes($"{tenant.Length}:{tenant}{subject}");
        return "user#" + Convert.ToHexStringLower(SHA256.HashData(input).AsSpan(0, 6));
    }
}
