using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace HsmVault.Evidence;

/// <summary>
/// The one encoding of deployment evidence, so that one document has one SHA-256 digest.
/// </summary>
/// <remarks>
/// The rule (RFC 8785, JSON Canonicalization Scheme, for documents whose only numbers are
/// integers):
/// <list type="number">
/// <item>No whitespace anywhere outside strings; UTF-8 without a byte-order mark; no trailing newline.</item>
/// <item>Object members sorted by key, comparing keys as sequences of UTF-16 code units (ordinal); no duplicate keys.</item>
/// <item>Strings: <c>"</c> and <c>\</c> escaped as <c>\"</c> and <c>\\</c>; U+0008, U+0009, U+000A, U+000C,
/// U+000D as <c>\b \t \n \f \r</c>; other characters below U+0020 as <c>\u00xx</c> (lowercase hex);
/// every other character as itself in UTF-8. Lone surrogates are refused.</item>
/// <item>Numbers: non-negative integers below 2^53 in decimal without leading zeros, sign or exponent.
/// No fractions.</item>
/// <item><c>true</c>, <c>false</c>, <c>null</c> as such. Byte strings are lowercase hex JSON strings.</item>
/// </list>
/// Any RFC 8785 implementation produces the same bytes for these documents.
/// </remarks>
public static class CanonicalJson
{
    /// <summary>Largest integer the encoding carries (2^53 - 1: exact in every JSON reader's doubles).</summary>
    public const ulong MaxInteger = (1UL << 53) - 1;

    /// <summary>The canonical bytes of <paramref name="node"/>.</summary>
    /// <exception cref="EvidenceFormatException">A number that is not an integer in range, or a lone surrogate.</exception>
    public static byte[] Encode(JsonNode? node)
    {
        var text = new StringBuilder();
        Write(text, node);
        return new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true).GetBytes(text.ToString());
    }

    private static void Write(StringBuilder text, JsonNode? node)
    {
        switch (node)
        {
            case null:
                text.Append("null");
                break;
            case JsonObject obj:
                text.Append('{');
                var first = true;
                foreach (var (key, value) in obj.OrderBy(p => p.Key, StringComparer.Ordinal))
                {
                    if (!first)
                    {
                        text.Append(',');
                    }

                    first = false;
                    WriteString(text, key);
                    text.Append(':');
                    Write(text, value);
                }

                text.Append('}');
                break;
            case JsonArray array:
                text.Append('[');
                for (var i = 0; i < array.Count; i++)
                {
                    if (i > 0)
                    {
                        text.Append(',');
                    }

                    Write(text, array[i]);
                }

                text.Append(']');
                break;
            default:
                WriteValue(text, node.AsValue());
                break;
        }
    }

    private static void WriteValue(StringBuilder text, JsonValue value)
    {
        switch (value.GetValueKind())
        {
            case JsonValueKind.String:
                WriteString(text, value.GetValue<string>());
                break;
            case JsonValueKind.True:
                text.Append("true");
                break;
            case JsonValueKind.False:
                text.Append("false");
                break;
            case JsonValueKind.Null:
                text.Append("null");
                break;
            case JsonValueKind.Number when Integer(value) is { } number && number <= MaxInteger:
                text.Append(number.ToString(CultureInfo.InvariantCulture));
                break;
            default:
                throw new EvidenceFormatException($"value {value.ToJsonString()} has no canonical encoding: only integers 0..{MaxInteger} are allowed");
        }
    }

    /// <summary>A number node's value as an unsigned integer, whichever integer type it was made from; null otherwise.</summary>
    internal static ulong? Integer(JsonValue value) =>
        value.TryGetValue<ulong>(out var u) ? u
        : value.TryGetValue<long>(out var l) && l >= 0 ? (ulong)l
        : value.TryGetValue<int>(out var i) && i >= 0 ? (ulong)i
        : value.TryGetValue<JsonElement>(out var e) && e.TryGetUInt64(out var fromElement) ? fromElement
        : null;

    private static void WriteString(StringBuilder text, string value)
    {
        text.Append('"');
        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            switch (c)
            {
                case '"': text.Append("\\\""); break;
                case '\\': text.Append("\\\\"); break;
                case '\b': text.Append("\\b"); break;
                case '\t': text.Append("\\t"); break;
                case '\n': text.Append("\\n"); break;
                case '\f': text.Append("\\f"); break;
                case '\r': text.Append("\\r"); break;
                case < ' ': text.Append("\\u00").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture)); break;
                default:
                    if (char.IsHighSurrogate(c) && i + 1 < value.Length && char.IsLowSurrogate(value[i + 1]))
                    {
                        text.Append(c).Append(value[++i]);
                    }
                    else if (char.IsSurrogate(c))
                    {
                        throw new EvidenceFormatException("a string holds a lone UTF-16 surrogate, which has no UTF-8 encoding");
                    }
                    else
                    {
                        text.Append(c);
                    }

                    break;
            }
        }

        text.Append('"');
    }
}

/// <summary>A document that is not deployment evidence; the message names the field.</summary>
public sealed class EvidenceFormatException(string message, Exception? innerException = null) : Exception(message, innerException);
