using System.Text.Json;
using System.Text.Json.Nodes;
using HsmVault.Crypto.Signatures;

namespace HsmVault.Evidence;

/// <summary>Strict readers of evidence fields: a missing or malformed field is refused naming its path.</summary>
internal static class JsonFields
{
    public static JsonObject Object(JsonNode? node, string path) =>
        node as JsonObject ?? throw new EvidenceFormatException($"{path} must be an object");

    public static string String(JsonObject o, string name, string path) =>
        o[name] is JsonValue v && v.GetValueKind() == JsonValueKind.String
            ? v.GetValue<string>()
            : throw new EvidenceFormatException($"{path}.{name} must be a string");

    public static string? OptionalString(JsonObject o, string name, string path) =>
        o.ContainsKey(name) ? String(o, name, path) : null;

    public static ulong Integer(JsonObject o, string name, string path, ulong max = CanonicalJson.MaxInteger) =>
        o[name] is JsonValue v && v.GetValueKind() == JsonValueKind.Number && CanonicalJson.Integer(v) is { } n && n <= max
            ? n
            : throw new EvidenceFormatException($"{path}.{name} must be an integer 0..{max}");

    public static ulong? OptionalInteger(JsonObject o, string name, string path) =>
        o.ContainsKey(name) ? Integer(o, name, path) : null;

    /// <summary>true, false, or null for an attribute the token would not show.</summary>
    public static bool? Bool(JsonObject o, string name, string path) =>
        !o.ContainsKey(name) ? throw new EvidenceFormatException($"{path}.{name} is missing")
        : o[name] switch
        {
            null => null,
            JsonValue v when v.GetValueKind() == JsonValueKind.True => true,
            JsonValue v when v.GetValueKind() == JsonValueKind.False => false,
            _ => throw new EvidenceFormatException($"{path}.{name} must be true, false or null"),
        };

    public static byte[] Hex(JsonObject o, string name, string path)
    {
        var text = String(o, name, path);
        if (text.Length % 2 != 0 || text.Any(c => !char.IsAsciiHexDigitLower(c) && !char.IsAsciiDigit(c)))
        {
            throw new EvidenceFormatException($"{path}.{name} must be lowercase hexadecimal");
        }

        return Convert.FromHexString(text);
    }

    public static byte[]? OptionalHex(JsonObject o, string name, string path) => o.ContainsKey(name) ? Hex(o, name, path) : null;

    public static IReadOnlyList<T> Array<T>(JsonObject o, string name, string path, Func<JsonNode?, string, T> read)
    {
        if (o[name] is not JsonArray array)
        {
            throw new EvidenceFormatException($"{path}.{name} must be an array");
        }

        return [.. array.Select((item, i) => read(item, $"{path}.{name}[{i}]"))];
    }

    public static SignatureAlgorithm Algorithm(JsonObject o, string path)
    {
        var name = String(o, "algorithm", path);
        return Enum.TryParse<SignatureAlgorithm>(name, ignoreCase: false, out var algorithm) && Enum.IsDefined(algorithm) && !char.IsAsciiDigit(name[0])
            ? algorithm
            : throw new EvidenceFormatException($"{path}.algorithm is '{name}'; expected Ed25519 or EcdsaP256Sha256");
    }

    public static JsonObject Key(SigningKeyDescription key) =>
        new() { ["algorithm"] = key.Algorithm.ToString(), ["public_key"] = Convert.ToHexStringLower(key.PublicKey) };

    public static SigningKeyDescription ReadKey(JsonNode? node, string path)
    {
        var o = Object(node, path);
        return new SigningKeyDescription(Algorithm(o, path), Hex(o, "public_key", path));
    }
}
