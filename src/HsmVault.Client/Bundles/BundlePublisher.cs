using Google.Protobuf;
using HsmVault.Protocol.V1;
using HsmVault.Transparency;
using HsmVault.Transparency.Bundles;
using HsmVault.Transparency.Notes;
using WitnessClient = HsmVault.Protocol.V1.Witness.WitnessClient;

namespace HsmVault.Client.Bundles;

/// <summary>
/// The operator's side of a validation bundle: encodes it, signs its witness submission with the
/// operator key, submits it to every witness, has the fleet countersign each witness's signature
/// with the token-held fleet signing key, and returns the <see cref="SignedBundle"/> that members
/// serve. Publishing the same bundle again is harmless: each witness answers with the entry it
/// logged before.
/// </summary>
/// <param name="witnesses">The witnesses to log the bundle at.</param>
/// <param name="operatorSign">Signs the witness submission message with the operator key.</param>
/// <param name="fleetSign">Signs a countersignature message with the fleet signing key (in a member's token).</param>
public sealed class BundlePublisher(
    IReadOnlyList<WitnessClient> witnesses,
    Func<byte[], BundleSignature> operatorSign,
    Func<byte[], BundleSignature> fleetSign)
{
    /// <summary>Logs <paramref name="bundle"/> at every witness and returns it signed and countersigned.</summary>
    /// <exception cref="TransparencyException">The bundle is not valid, or a witness's answer is not about it.</exception>
    /// <exception cref="Grpc.Core.RpcException">A witness refused (e.g. a second digest for a logged epoch: FAILED_PRECONDITION).</exception>
    public async Task<SignedBundle> PublishAsync(ValidationBundle bundle, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(bundle);
        var encoded = BundleCodec.Encode(bundle);
        var digest = BundleCodec.Digest(encoded);
        var operatorSignature = operatorSign(WitnessSubmission.SignedMessage(bundle.Namespace, bundle.Epoch, digest));
        var signed = new SignedBundle
        {
            Bundle = ByteString.CopyFrom(encoded),
            OperatorSignature = new TaggedSignature { Algorithm = (uint)operatorSignature.Algorithm, Signature = ByteString.CopyFrom(operatorSignature.Signature) },
        };
        foreach (var witness in witnesses)
        {
            var logged = await witness.SubmitBundleAsync(
                new SubmitBundleRequest { Namespace = bundle.Namespace, Epoch = bundle.Epoch, Bundle = ByteString.CopyFrom(encoded), OperatorSignature = signed.OperatorSignature },
                cancellationToken: cancellationToken);
            var statement = WitnessStatement.Decode(logged.Entry.Statement.Span);
            if (statement.Epoch != bundle.Epoch || statement.Namespace != bundle.Namespace || !statement.Digest.AsSpan().SequenceEqual(digest))
            {
                throw new TransparencyException($"a witness answered the submission of '{bundle.Namespace}' epoch {bundle.Epoch} with a statement about another bundle");
            }

            var origin = Checkpoint.ParseText(SignedNote.UnverifiedText(logged.Checkpoint)).Origin;
            var (name, keyId) = SignedNote.Signers(logged.Checkpoint).FirstOrDefault(s => s.Name == origin);
            var countersignature = fleetSign(FleetCountersignature.SignedMessage(logged.Entry.WitnessSignature.Signature.Span));
            var attestation = new Protocol.V1.WitnessAttestation
            {
                WitnessKeyName = name ?? throw new TransparencyException($"witness '{origin}' signed its checkpoint with no key named after its log"),
                WitnessKeyId = keyId,
                Entry = new LoggedBundle { LeafIndex = logged.Entry.LeafIndex, Statement = logged.Entry.Statement, WitnessSignature = logged.Entry.WitnessSignature },
                Checkpoint = logged.Checkpoint,
                FleetCountersignature = new TaggedSignature { Algorithm = (uint)countersignature.Algorithm, Signature = ByteString.CopyFrom(countersignature.Signature) },
            };
            attestation.InclusionProof.AddRange(logged.InclusionProof);
            signed.Attestations.Add(attestation);
        }

        return signed;
    }
}
