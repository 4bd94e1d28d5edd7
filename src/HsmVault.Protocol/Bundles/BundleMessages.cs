using Google.Protobuf;
using HsmVault.Crypto.Signatures;
using HsmVault.Protocol.V1;
using HsmVault.Transparency.Bundles;

namespace HsmVault.Protocol.Bundles;

/// <summary>Converts between bundle.proto's messages and the verifier's types, and reads and writes SignedBundle files.</summary>
public static class BundleMessages
{
    /// <summary>The verifier's view of a <see cref="SignedBundle"/> message.</summary>
    public static SignedValidationBundle ToModel(SignedBundle message)
    {
        ArgumentNullException.ThrowIfNull(message);
        return new SignedValidationBundle(
            message.Bundle.ToByteArray(),
            ToModel(message.OperatorSignature),
            [.. message.Attestations.Select(a => new Transparency.Bundles.WitnessAttestation(
                a.WitnessKeyName,
                a.WitnessKeyId,
                a.Entry?.LeafIndex ?? 0,
                a.Entry?.Statement.ToByteArray() ?? [],
                ToModel(a.Entry?.WitnessSignature) ?? new BundleSignature(0, []),
                [.. a.InclusionProof.Select(p => p.ToByteArray())],
                a.Checkpoint,
                ToModel(a.FleetCountersignature)))]);
    }

    /// <summary>The <see cref="SignedBundle"/> message of a model.</summary>
    public static SignedBundle ToMessage(SignedValidationBundle model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var message = new SignedBundle { Bundle = ByteString.CopyFrom(model.Bundle), OperatorSignature = ToMessage(model.OperatorSignature) };
        foreach (var a in model.Attestations)
        {
            var attestation = new Protocol.V1.WitnessAttestation
            {
                WitnessKeyName = a.WitnessKeyName,
                WitnessKeyId = a.WitnessKeyId,
                Entry = new LoggedBundle
                {
                    LeafIndex = a.LeafIndex,
                    Statement = ByteString.CopyFrom(a.Statement),
                    WitnessSignature = ToMessage(a.WitnessSignature),
                },
                Checkpoint = a.Checkpoint,
                FleetCountersignature = ToMessage(a.FleetCountersignature),
            };
            attestation.InclusionProof.AddRange(a.InclusionProof.Select(ByteString.CopyFrom));
            message.Attestations.Add(attestation);
        }

        return message;
    }

    /// <summary>Reads a SignedBundle file (binary protobuf, as <c>hsmvault fleet bundle</c> writes it).</summary>
    /// <exception cref="InvalidDataException">The file is not a SignedBundle.</exception>
    public static SignedBundle ReadFile(string path)
    {
        try
        {
            var message = SignedBundle.Parser.ParseFrom(File.ReadAllBytes(path));
            return message.Bundle.IsEmpty
                ? throw new InvalidDataException($"'{path}' is not a signed validation bundle: it has no bundle bytes")
                : message;
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new InvalidDataException($"'{path}' is not a signed validation bundle ({e.Message})", e);
        }
    }

    /// <summary>Writes a SignedBundle file: a new file renamed over the old one, so readers see the old bundle or the new.</summary>
    public static void WriteFile(string path, SignedBundle message)
    {
        ArgumentNullException.ThrowIfNull(message);
        var full = Path.GetFullPath(path);
        var temporary = $"{full}.{Environment.ProcessId}.tmp";
        using (var stream = File.Create(temporary))
        {
            message.WriteTo(stream);
            stream.Flush(flushToDisk: true);
        }

        File.Move(temporary, full, overwrite: true);
    }

    private static BundleSignature? ToModel(TaggedSignature? signature) =>
        signature is null ? null : new BundleSignature((SignatureAlgorithm)signature.Algorithm, signature.Signature.ToByteArray());

    private static TaggedSignature? ToMessage(BundleSignature? signature) =>
        signature is null ? null : new TaggedSignature { Algorithm = (uint)signature.Algorithm, Signature = ByteString.CopyFrom(signature.Signature) };
}
