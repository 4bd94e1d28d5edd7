using System.Text.Json.Nodes;

namespace HsmVault.Evidence;

/// <summary>What a ceremony step did.</summary>
public enum CeremonyAction
{
    /// <summary>The actor's token generated the fleet keys.</summary>
    Generate,

    /// <summary>The actor's token wrapped fleet keys for the peer under the ECDH-derived key.</summary>
    Wrap,

    /// <summary>The actor's token unwrapped fleet keys from the peer under the ECDH-derived key.</summary>
    Unwrap,

    /// <summary>The actor's token set CKA_EXTRACTABLE false on the keys it had generated extractable for the ceremony.</summary>
    Lock,
}

/// <summary>
/// One step of the key ceremony, as the acting member's token signs it. A wrap on A and the
/// unwrap on B that belongs to it name the same two ephemeral P-256 points (each from its own
/// side) and the same SHA-256 of every wrapped blob, which is the chain "generated on A, wrapped
/// under an ECDH-derived key, unwrapped on B".
/// </summary>
/// <param name="Sequence">Position in the transcript, from 1.</param>
/// <param name="Action">What happened.</param>
/// <param name="Actor">Index of the member whose token did it (and signs the step).</param>
/// <param name="Fleet">The fleet, binding the step to this ceremony.</param>
/// <param name="Epoch">The epoch, likewise.</param>
/// <param name="Keys">The keys it concerned; for wrap and unwrap each with its blob's digest.</param>
/// <param name="Peer">Wrap and unwrap: the other member.</param>
/// <param name="ActorEphemeralKey">Wrap and unwrap: the actor's ephemeral P-256 point (65 bytes).</param>
/// <param name="PeerEphemeralKey">Wrap and unwrap: the peer's ephemeral P-256 point.</param>
/// <param name="Mechanism">Wrap and unwrap: the actor's PKCS#11 RFC 5649 mechanism.</param>
public sealed record CeremonyStep(
    ulong Sequence,
    CeremonyAction Action,
    int Actor,
    string Fleet,
    ulong Epoch,
    IReadOnlyList<StepKey> Keys,
    int? Peer = null,
    byte[]? ActorEphemeralKey = null,
    byte[]? PeerEphemeralKey = null,
    ulong? Mechanism = null)
{
    /// <summary>How the wrapping key is agreed, named in every wrap and unwrap step.</summary>
    public const string KeyAgreement = "CKM_ECDH1_DERIVE(P-256, CKD_NULL) -> AES-256, ephemeral session keys";

    /// <summary>Domain separation of step signatures.</summary>
    public static ReadOnlySpan<byte> SignaturePrefix => "HsmVault ceremony step v1\0"u8;

    /// <summary>The bytes the actor signs: the prefix, then the canonical step.</summary>
    public byte[] SignedBytes() => [.. SignaturePrefix, .. CanonicalJson.Encode(ToJson())];

    /// <summary>The action's name in the document.</summary>
    public static string ActionName(CeremonyAction action) => action switch
    {
        CeremonyAction.Generate => "generate",
        CeremonyAction.Wrap => "wrap",
        CeremonyAction.Unwrap => "unwrap",
        CeremonyAction.Lock => "lock",
        _ => throw new ArgumentOutOfRangeException(nameof(action)),
    };

    internal JsonObject ToJson()
    {
        var o = new JsonObject
        {
            ["sequence"] = Sequence,
            ["action"] = ActionName(Action),
            ["actor"] = Actor,
            ["fleet"] = Fleet,
            ["epoch"] = Epoch,
            ["keys"] = new JsonArray([.. Keys.Select(k => (JsonNode)k.ToJson())]),
        };
        if (Action is CeremonyAction.Wrap or CeremonyAction.Unwrap)
        {
            o["peer"] = Peer;
            o["key_agreement"] = KeyAgreement;
            o["actor_ephemeral_key"] = Convert.ToHexStringLower(ActorEphemeralKey ?? []);
            o["peer_ephemeral_key"] = Convert.ToHexStringLower(PeerEphemeralKey ?? []);
            o["mechanism"] = Mechanism;
        }

        return o;
    }

    internal static CeremonyStep FromJson(JsonObject o, string path)
    {
        var actionName = JsonFields.String(o, "action", path);
        var action = Enum.GetValues<CeremonyAction>().Where(a => ActionName(a) == actionName).Cast<CeremonyAction?>().FirstOrDefault()
            ?? throw new EvidenceFormatException($"{path}.action is '{actionName}'; expected generate, wrap, unwrap or lock");
        var step = new CeremonyStep(
            JsonFields.Integer(o, "sequence", path),
            action,
            (int)JsonFields.Integer(o, "actor", path, int.MaxValue),
            JsonFields.String(o, "fleet", path),
            JsonFields.Integer(o, "epoch", path),
            JsonFields.Array(o, "keys", path, StepKey.FromJson));
        if (action is CeremonyAction.Wrap or CeremonyAction.Unwrap)
        {
            var agreement = JsonFields.String(o, "key_agreement", path);
            if (agreement != KeyAgreement)
            {
                throw new EvidenceFormatException($"{path}.key_agreement is '{agreement}'; this format knows only '{KeyAgreement}'");
            }

            step = step with
            {
                Peer = (int)JsonFields.Integer(o, "peer", path, int.MaxValue),
                ActorEphemeralKey = JsonFields.Hex(o, "actor_ephemeral_key", path),
                PeerEphemeralKey = JsonFields.Hex(o, "peer_ephemeral_key", path),
                Mechanism = JsonFields.Integer(o, "mechanism", path),
            };
        }

        return step;
    }
}

/// <summary>A key a step concerned; for wrap and unwrap, the SHA-256 of its wrapped blob.</summary>
public sealed record StepKey(string Label, byte[]? WrappedSha256 = null)
{
    internal JsonObject ToJson()
    {
        var o = new JsonObject { ["label"] = Label };
        if (WrappedSha256 is not null)
        {
            o["wrapped_sha256"] = Convert.ToHexStringLower(WrappedSha256);
        }

        return o;
    }

    internal static StepKey FromJson(JsonNode? node, string path)
    {
        var o = JsonFields.Object(node, path);
        return new StepKey(JsonFields.String(o, "label", path), JsonFields.OptionalHex(o, "wrapped_sha256", path));
    }
}

/// <summary>A step and its actor's identity-key signature of <see cref="CeremonyStep.SignedBytes"/>.</summary>
public sealed record SignedStep(CeremonyStep Step, TaggedSignature Signature)
{
    internal JsonObject ToJson() => new() { ["step"] = Step.ToJson(), ["signature"] = Signature.ToJson() };

    internal static SignedStep FromJson(JsonNode? node, string path)
    {
        var o = JsonFields.Object(node, path);
        return new SignedStep(CeremonyStep.FromJson(JsonFields.Object(o["step"], path + ".step"), path + ".step"), TaggedSignature.FromJson(o["signature"], path + ".signature"));
    }
}
