using Google.Protobuf;
using Grpc.Core;
using HsmVault.Crypto.Signatures;
using HsmVault.Protocol.V1;

namespace HsmVault.Witness.Services;

/// <summary>
/// The witness API of <c>witness.proto</c> over <see cref="WitnessLog"/>: converts messages, and
/// turns every <see cref="WitnessException"/> into its one status code (and, for refused
/// submissions, the <see cref="RefusalTrailer"/> naming a <see cref="WitnessRefusal"/>).
/// </summary>
internal sealed class WitnessGrpcService(WitnessLog log) : Generated.Witness.WitnessBase
{
    /// <summary>The proto names of <see cref="WitnessRefusal"/> values (e.g. WITNESS_REFUSAL_EQUIVOCATION).</summary>
    private static readonly Google.Protobuf.Reflection.EnumDescriptor RefusalNames =
        WitnessReflection.Descriptor.EnumTypes.Single(e => e.ClrType == typeof(WitnessRefusal));

    public override Task<LoggedBundleResponse> SubmitBundle(SubmitBundleRequest request, ServerCallContext context) =>
        RunAsync(context, async () =>
        {
            var signature = request.OperatorSignature
                ?? throw new WitnessException(WitnessErrorKind.Unauthenticated, "operator_signature is missing; the namespace's operator must sign the submission");
            var submission = new BundleSubmission(request.Namespace, request.Epoch, request.Bundle.ToByteArray(),
                (SignatureAlgorithm)signature.Algorithm, signature.Signature.ToByteArray());
            return ToResponse(await log.SubmitAsync(submission, context.CancellationToken));
        });

    public override Task<LoggedBundleResponse> GetBundle(GetBundleRequest request, ServerCallContext context) =>
        RunAsync(context, async () => ToResponse(await log.GetBundleAsync(request.Namespace, request.Epoch, context.CancellationToken)));

    public override Task<GetCheckpointResponse> GetCheckpoint(GetCheckpointRequest request, ServerCallContext context) =>
        RunAsync(context, () =>
        {
            var note = request.TreeSize == 0
                ? log.LatestCheckpoint ?? throw new WitnessException(WitnessErrorKind.NotFound, "the log is empty: no checkpoint has been signed yet")
                : log.GetCheckpoint(request.TreeSize);
            return Task.FromResult(new GetCheckpointResponse { Checkpoint = note });
        });

    public override Task<GetInclusionProofResponse> GetInclusionProof(GetInclusionProofRequest request, ServerCallContext context) =>
        RunAsync(context, () =>
        {
            var (leafHash, proof) = log.GetInclusionProof(request.LeafIndex, request.TreeSize);
            var response = new GetInclusionProofResponse { LeafHash = ByteString.CopyFrom(leafHash) };
            response.Proof.AddRange(proof.Select(ByteString.CopyFrom));
            return Task.FromResult(response);
        });

    public override Task<GetConsistencyProofResponse> GetConsistencyProof(GetConsistencyProofRequest request, ServerCallContext context) =>
        RunAsync(context, () =>
        {
            var response = new GetConsistencyProofResponse();
            response.Proof.AddRange(log.GetConsistencyProof(request.OldSize, request.NewSize).Select(ByteString.CopyFrom));
            return Task.FromResult(response);
        });

    public override Task<GetEntriesResponse> GetEntries(GetEntriesRequest request, ServerCallContext context) =>
        RunAsync(context, () =>
        {
            var count = (int)Math.Min(request.Count, int.MaxValue);
            var response = new GetEntriesResponse();
            response.Entries.AddRange(log.GetEntries(request.Start, count).Select(ToMessage));
            return Task.FromResult(response);
        });

    public override Task<ListEquivocationsResponse> ListEquivocations(ListEquivocationsRequest request, ServerCallContext context) =>
        RunAsync(context, () =>
        {
            var limit = request.Limit == 0 ? 100 : (int)Math.Min(request.Limit, int.MaxValue);
            var afterId = request.AfterId > long.MaxValue ? long.MaxValue : (long)request.AfterId;
            var response = new ListEquivocationsResponse();
            response.Equivocations.AddRange(log.ListEquivocations(request.Namespace.Length == 0 ? null : request.Namespace, afterId, limit)
                .Select(e => new Equivocation
                {
                    Id = (ulong)e.Id,
                    Namespace = e.Namespace,
                    Epoch = e.Epoch,
                    LoggedDigest = ByteString.CopyFrom(e.LoggedDigest),
                    AttemptedDigest = ByteString.CopyFrom(e.AttemptedDigest),
                    ObservedAtUnixMs = e.ObservedAt.ToUnixTimeMilliseconds(),
                    OperatorSignature = new TaggedSignature { Algorithm = (uint)e.OperatorAlgorithm, Signature = ByteString.CopyFrom(e.OperatorSignature) },
                }));
            return Task.FromResult(response);
        });

    private static async Task<T> RunAsync<T>(ServerCallContext context, Func<Task<T>> call)
    {
        try
        {
            return await call();
        }
        catch (WitnessException e)
        {
            var (code, refusal) = e.Kind switch
            {
                WitnessErrorKind.InvalidArgument => (StatusCode.InvalidArgument, (WitnessRefusal?)null),
                WitnessErrorKind.Unauthenticated => (StatusCode.Unauthenticated, null),
                WitnessErrorKind.NotFound => (StatusCode.NotFound, null),
                WitnessErrorKind.Equivocation => (StatusCode.FailedPrecondition, WitnessRefusal.Equivocation),
                WitnessErrorKind.EpochNotIncreasing => (StatusCode.FailedPrecondition, WitnessRefusal.EpochNotIncreasing),
                WitnessErrorKind.OutOfRange => (StatusCode.OutOfRange, null),
                _ => (StatusCode.Internal, null),
            };
            var trailers = new Metadata();
            if (refusal is { } reason)
            {
                trailers.Add(RefusalTrailer.Name, RefusalNames.FindValueByNumber((int)reason).Name);
            }

            throw new RpcException(new Status(code, e.Message), trailers);
        }
    }

    private static LoggedBundleResponse ToResponse(LoggedBundleProof proof)
    {
        var response = new LoggedBundleResponse
        {
            Entry = ToMessage(proof.Entry),
            Checkpoint = proof.CheckpointNote,
            AlreadyLogged = proof.AlreadyLogged,
        };
        response.InclusionProof.AddRange(proof.InclusionProof.Select(ByteString.CopyFrom));
        return response;
    }

    private static LoggedBundle ToMessage(LoggedEntry entry) => new()
    {
        LeafIndex = entry.LeafIndex,
        Statement = ByteString.CopyFrom(entry.StatementBytes),
        WitnessSignature = new TaggedSignature { Algorithm = (uint)entry.SignatureAlgorithm, Signature = ByteString.CopyFrom(entry.Signature) },
        Bundle = ByteString.CopyFrom(entry.Bundle),
    };
}
