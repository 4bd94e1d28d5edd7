using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using HsmVault.Crypto.Signatures;
using HsmVault.Hsm;

namespace HsmVault.Evidence;

/// <summary>
/// A fleet epoch's deployment evidence: what every member's token is, the attributes and check
/// values of every vault key in it, the signed key-ceremony transcript and the daemon build's
/// hash (the <see cref="Body"/>), signed as a whole by every member's identity key.
/// </summary>
/// <remarks>
/// The file is exactly <see cref="Encode"/>'s bytes (<see cref="CanonicalJson"/>), so
/// <c>sha256sum FILE</c> prints <see cref="Digest"/>, the digest the validation bundle carries and
/// the witness logs. The README's "Deployment evidence" section describes every field.
/// </remarks>
public sealed record DeploymentEvidence(EvidenceBody Body, IReadOnlyList<MemberSignature> Signatures)
{
    /// <summary>The format name, the document's <c>format</c> field.</summary>
    public const string Format = "hsmvault-deployment-evidence/v1";

    /// <summary>Domain separation of the members' signatures over the body.</summary>
    public static ReadOnlySpan<byte> BodySignaturePrefix => "HsmVault deployment evidence v1\0"u8;

    /// <summary>The bytes each member signs: the prefix, then the canonical body.</summary>
    public static byte[] SignedBody(EvidenceBody body) => [.. BodySignaturePrefix, .. CanonicalJson.Encode(body.ToJson())];

    /// <summary>The canonical encoding: the file's bytes.</summary>
    public byte[] Encode() => CanonicalJson.Encode(new JsonObject
    {
        ["format"] = Format,
        ["body"] = Body.ToJson(),
        ["signatures"] = new JsonArray([.. Signatures.Select(s => (JsonNode)s.ToJson())]),
    });

    /// <summary>SHA-256 of <see cref="Encode"/>: the evidence digest.</summary>
    public byte[] Digest() => SHA256.HashData(Encode());

    /// <summary>Reads a document, refusing anything that is not this format in its canonical encoding.</summary>
    /// <exception cref="EvidenceFormatException">Not JSON, a field missing or malformed (named by its path), or not canonical.</exception>
    public static DeploymentEvidence Decode(ReadOnlySpan<byte> bytes)
    {
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(bytes, documentOptions: new JsonDocumentOptions { AllowTrailingCommas = false, CommentHandling = JsonCommentHandling.Disallow });
        }
        catch (Exception e) when (e is JsonException or ArgumentException)
        {
            throw new EvidenceFormatException($"not JSON: {e.Message}", e);
        }

        var document = JsonFields.Object(root, "$");
        var format = JsonFields.String(document, "format", "$");
        if (format != Format)
        {
            throw new EvidenceFormatException($"$.format is '{format}'; this verifier reads '{Format}'");
        }

        var evidence = new DeploymentEvidence(
            EvidenceBody.FromJson(JsonFields.Object(document["body"], "$.body")),
            JsonFields.Array(document, "signatures", "$", MemberSignature.FromJson));
        var canonical = evidence.Encode();
        if (!canonical.AsSpan().SequenceEqual(bytes))
        {
            var at = canonical.AsSpan().CommonPrefixLength(bytes);
            throw new EvidenceFormatException(
                $"the file is not in canonical form (or carries fields this format does not have): it first differs from its canonical " +
                $"encoding at byte {at}. Evidence is signed and digested only in its canonical form; do not reformat the file");
        }

        return evidence;
    }
}

/// <summary>Everything the members sign.</summary>
/// <param name="Fleet">The fleet's namespace at the witness (its id).</param>
/// <param name="Epoch">The fleet epoch this evidence is for.</param>
/// <param name="CreatedAt">When it was recorded (UTC, ISO 8601); informational.</param>
/// <param name="DaemonBuild">The hash of the daemon build the members run.</param>
/// <param name="FleetSigningKey">The fleet signing key's public half.</param>
/// <param name="Members">Every member, by index.</param>
/// <param name="Transcript">The key ceremony, step by step.</param>
public sealed record EvidenceBody(
    string Fleet,
    ulong Epoch,
    string CreatedAt,
    DaemonBuild DaemonBuild,
    SigningKeyDescription FleetSigningKey,
    IReadOnlyList<MemberEvidence> Members,
    IReadOnlyList<SignedStep> Transcript)
{
    internal JsonObject ToJson() => new()
    {
        ["fleet"] = Fleet,
        ["epoch"] = Epoch,
        ["created_at"] = CreatedAt,
        ["daemon_build"] = DaemonBuild.ToJson(),
        ["fleet_signing_key"] = JsonFields.Key(FleetSigningKey),
        ["members"] = new JsonArray([.. Members.Select(m => (JsonNode)m.ToJson())]),
        ["transcript"] = new JsonArray([.. Transcript.Select(s => (JsonNode)s.ToJson())]),
    };

    internal static EvidenceBody FromJson(JsonObject o) => new(
        JsonFields.String(o, "fleet", "$.body"),
        JsonFields.Integer(o, "epoch", "$.body"),
        JsonFields.String(o, "created_at", "$.body"),
        DaemonBuild.FromJson(JsonFields.Object(o["daemon_build"], "$.body.daemon_build")),
        JsonFields.ReadKey(o["fleet_signing_key"], "$.body.fleet_signing_key"),
        JsonFields.Array(o, "members", "$.body", MemberEvidence.FromJson),
        JsonFields.Array(o, "transcript", "$.body", SignedStep.FromJson));
}

/// <summary>One member: its token, its identity key and its vault keys.</summary>
public sealed record MemberEvidence(int Index, TokenIdentity Token, SigningKeyDescription IdentityKey, IReadOnlyList<KeyEvidence> Keys)
{
    /// <summary>"member 1 (token 'm1', serial 1a2b)" for reports.</summary>
    public string Name => $"member {Index} (token '{Token.Label}', serial {Token.Serial})";

    internal JsonObject ToJson() => new()
    {
        ["index"] = Index,
        ["token"] = new JsonObject
        {
            ["label"] = Token.Label,
            ["manufacturer"] = Token.Manufacturer,
            ["model"] = Token.Model,
            ["serial"] = Token.Serial,
            ["firmware"] = Token.Firmware,
            ["hardware"] = Token.Hardware,
        },
        ["identity_key"] = JsonFields.Key(IdentityKey),
        ["keys"] = new JsonArray([.. Keys.Select(k => (JsonNode)k.ToJson())]),
    };

    internal static MemberEvidence FromJson(JsonNode? node, string path)
    {
        var o = JsonFields.Object(node, path);
        var token = JsonFields.Object(o["token"], path + ".token");
        var tokenPath = path + ".token";
        return new MemberEvidence(
            (int)JsonFields.Integer(o, "index", path, int.MaxValue),
            new TokenIdentity(
                JsonFields.String(token, "label", tokenPath), JsonFields.String(token, "manufacturer", tokenPath),
                JsonFields.String(token, "model", tokenPath), JsonFields.String(token, "serial", tokenPath),
                JsonFields.String(token, "firmware", tokenPath), JsonFields.String(token, "hardware", tokenPath)),
            JsonFields.ReadKey(o["identity_key"], path + ".identity_key"),
            JsonFields.Array(o, "keys", path, KeyEvidence.FromJson));
    }
}

/// <summary>One key in one member's token.</summary>
/// <param name="Label">Its CKA_LABEL.</param>
/// <param name="Role">What it is for.</param>
/// <param name="Attributes">CKA_LOCAL, CKA_NEVER_EXTRACTABLE, CKA_ALWAYS_SENSITIVE, CKA_SENSITIVE, CKA_EXTRACTABLE as read (null: unreadable).</param>
/// <param name="CheckValue">The key check value (see <see cref="DeploymentInspection"/>).</param>
public sealed record KeyEvidence(string Label, VaultKeyRole Role, TokenKeyAttributes Attributes, byte[] CheckValue)
{
    internal JsonObject ToJson() => new()
    {
        ["label"] = Label,
        ["role"] = RoleNames.Name(Role),
        ["attributes"] = new JsonObject
        {
            ["local"] = Attributes.Local,
            ["never_extractable"] = Attributes.NeverExtractable,
            ["always_sensitive"] = Attributes.AlwaysSensitive,
            ["sensitive"] = Attributes.Sensitive,
            ["extractable"] = Attributes.Extractable,
        },
        ["check_value"] = Convert.ToHexStringLower(CheckValue),
    };

    internal static KeyEvidence FromJson(JsonNode? node, string path)
    {
        var o = JsonFields.Object(node, path);
        var a = JsonFields.Object(o["attributes"], path + ".attributes");
        var ap = path + ".attributes";
        return new KeyEvidence(
            JsonFields.String(o, "label", path),
            RoleNames.Parse(JsonFields.String(o, "role", path), path + ".role"),
            new TokenKeyAttributes(
                JsonFields.Bool(a, "local", ap), JsonFields.Bool(a, "never_extractable", ap), JsonFields.Bool(a, "always_sensitive", ap),
                JsonFields.Bool(a, "sensitive", ap), JsonFields.Bool(a, "extractable", ap)),
            JsonFields.Hex(o, "check_value", path));
    }
}

/// <summary>The hash of a published daemon folder (see <see cref="DaemonBuildHash"/>).</summary>
public sealed record DaemonBuild(byte[] Sha256, ulong Files)
{
    internal JsonObject ToJson() => new() { ["sha256"] = Convert.ToHexStringLower(Sha256), ["files"] = Files };

    internal static DaemonBuild FromJson(JsonObject o) =>
        new(JsonFields.Hex(o, "sha256", "$.body.daemon_build"), JsonFields.Integer(o, "files", "$.body.daemon_build"));
}

/// <summary>A member's signature of the whole body.</summary>
public sealed record MemberSignature(int Member, TaggedSignature Signature)
{
    internal JsonObject ToJson() => new() { ["member"] = Member, ["signature"] = Signature.ToJson() };

    internal static MemberSignature FromJson(JsonNode? node, string path)
    {
        var o = JsonFields.Object(node, path);
        return new MemberSignature((int)JsonFields.Integer(o, "member", path, int.MaxValue), TaggedSignature.FromJson(o["signature"], path + ".signature"));
    }
}

/// <summary>A signature with the algorithm that made it.</summary>
public sealed record TaggedSignature(SignatureAlgorithm Algorithm, byte[] Value)
{
    internal JsonObject ToJson() => new() { ["algorithm"] = Algorithm.ToString(), ["value"] = Convert.ToHexStringLower(Value) };

    internal static TaggedSignature FromJson(JsonNode? node, string path)
    {
        var o = JsonFields.Object(node, path);
        return new TaggedSignature(JsonFields.Algorithm(o, path), JsonFields.Hex(o, "value", path));
    }

    /// <summary>Whether this is <paramref name="key"/>'s signature of <paramref name="message"/> (and names the key's algorithm).</summary>
    public bool IsBy(SigningKeyDescription key, ReadOnlySpan<byte> message) => Algorithm == key.Algorithm && key.Verifies(message, Value);
}

/// <summary>The JSON names of <see cref="VaultKeyRole"/>.</summary>
internal static class RoleNames
{
    public static string Name(VaultKeyRole role) => role switch
    {
        VaultKeyRole.OprfSeed => "oprf_seed",
        VaultKeyRole.RecordKey => "record_key",
        VaultKeyRole.FleetSigningKey => "fleet_signing_key",
        VaultKeyRole.MemberIdentityKey => "member_identity_key",
        _ => throw new ArgumentOutOfRangeException(nameof(role)),
    };

    public static VaultKeyRole Parse(string name, string path) =>
        Enum.GetValues<VaultKeyRole>().FirstOrDefault(r => Name(r) == name, (VaultKeyRole)(-1)) is var role && (int)role >= 0
            ? role
            : throw new EvidenceFormatException($"{path} is '{name}'; expected oprf_seed, record_key, fleet_signing_key or member_identity_key");
}
