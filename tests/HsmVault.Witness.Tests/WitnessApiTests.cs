using System.Security.Cryptography;
using Google.Protobuf;
using Grpc.Core;
using HsmVault.Crypto.Signatures;
using HsmVault.Protocol.V1;
using HsmVault.Transparency.Merkle;
using HsmVault.Transparency.Notes;
using HsmVault.Witness.Tests.Support;
using Microsoft.Extensions.Logging;

namespace HsmVault.Witness.Tests;

/// <summary>The gRPC API on a real Kestrel at 127.0.0.1 port 0: proofs a client verifies, and every malformed or unauthorised request refused with its status.</summary>
public sealed class WitnessApiTests : IAsyncLifetime, IDisposable
{
    private readonly WitnessSetup _setup = new();
    private InProcessWitness _witness = null!;

    private Protocol.V1.Witness.WitnessClient Client => _witness.Client;

    public async Task InitializeAsync() => _witness = await InProcessWitness.StartAsync(_setup.Settings());

    public async Task DisposeAsync()
    {
        await _witness.DisposeAsync();
        Assert.DoesNotContain(_witness.Logs.Events, e => e.Level >= LogLevel.Error);
    }

    public void Dispose() => _setup.Dispose();

    [Fact]
    public async Task SubmittedBundles_AreProvable_ByInclusionAndConsistency()
    {
        var op = _setup.Operators[0];
        var notes = new List<string>();
        for (ulong epoch = 1; epoch <= 6; epoch++)
        {
            var response = await Client.SubmitBundleAsync(Request(op, epoch, op.Bundle(epoch)));
            var checkpoint = Checkpoint.Open(response.Checkpoint, _setup.NoteKey, _setup.Origin);
            Assert.Equal(epoch, checkpoint.TreeSize);
            MerkleVerifier.VerifyInclusion(response.Entry.LeafIndex, checkpoint.TreeSize, MerkleHash.Leaf(response.Entry.Statement.Span),
                [.. response.InclusionProof.Select(p => p.ToByteArray())], checkpoint.RootHash);
            Assert.Equal((uint)SignatureAlgorithm.Ed25519, response.Entry.WitnessSignature.Algorithm);
            Assert.True(_setup.NoteKey.SigningKey.Verifies(response.Entry.Statement.Span, response.Entry.WitnessSignature.Signature.Span));
            notes.Add(response.Checkpoint);
        }

        var latestNote = (await Client.GetCheckpointAsync(new GetCheckpointRequest())).Checkpoint;
        var latest = Checkpoint.Open(latestNote, _setup.NoteKey, _setup.Origin);
        Assert.Equal(6UL, latest.TreeSize);
        foreach (var note in notes)
        {
            var old = Checkpoint.Open(note, _setup.NoteKey, _setup.Origin);
            Assert.Equal(note, (await Client.GetCheckpointAsync(new GetCheckpointRequest { TreeSize = old.TreeSize })).Checkpoint);
            var consistency = await Client.GetConsistencyProofAsync(new GetConsistencyProofRequest { OldSize = old.TreeSize, NewSize = 6 });
            MerkleVerifier.VerifyConsistency(old.TreeSize, 6, old.RootHash, latest.RootHash, [.. consistency.Proof.Select(p => p.ToByteArray())]);
            for (ulong leaf = 0; leaf < old.TreeSize; leaf++)
            {
                var inclusion = await Client.GetInclusionProofAsync(new GetInclusionProofRequest { LeafIndex = leaf, TreeSize = old.TreeSize });
                MerkleVerifier.VerifyInclusion(leaf, old.TreeSize, inclusion.LeafHash.Span, [.. inclusion.Proof.Select(p => p.ToByteArray())], old.RootHash);
            }
        }

        var bundle = await Client.GetBundleAsync(new GetBundleRequest { Namespace = op.Namespace, Epoch = 3 });
        Assert.Equal(op.Bundle(3), bundle.Entry.Bundle.ToByteArray());
        Assert.Equal(2UL, bundle.Entry.LeafIndex);
        MerkleVerifier.VerifyInclusion(2, 6, MerkleHash.Leaf(bundle.Entry.Statement.Span), [.. bundle.InclusionProof.Select(p => p.ToByteArray())],
            Checkpoint.Open(bundle.Checkpoint, _setup.NoteKey, _setup.Origin).RootHash);
        var entries = await Client.GetEntriesAsync(new GetEntriesRequest { Start = 1, Count = 64 });
        Assert.Equal([1UL, 2, 3, 4, 5], entries.Entries.Select(e => e.LeafIndex));
    }

    [Fact]
    public async Task Equivocation_IsFailedPrecondition_NamingBothDigests_AndListed()
    {
        var op = _setup.Operators[1];
        await Client.SubmitBundleAsync(Request(op, 4, op.Bundle(4)));
        var again = await Client.SubmitBundleAsync(Request(op, 4, op.Bundle(4)));
        Assert.True(again.AlreadyLogged);

        var refusal = await Assert.ThrowsAsync<RpcException>(async () => await Client.SubmitBundleAsync(Request(op, 4, op.Bundle(4, variant: 7))));
        Assert.Equal(StatusCode.FailedPrecondition, refusal.StatusCode);
        Assert.Equal("WITNESS_REFUSAL_EQUIVOCATION", refusal.Trailers.GetValue(WitnessGrpcServiceReason));
        Assert.Contains($"namespace '{op.Namespace}' epoch 4", refusal.Status.Detail, StringComparison.Ordinal);
        Assert.Contains(Convert.ToHexStringLower(SHA256.HashData(op.Bundle(4))), refusal.Status.Detail, StringComparison.Ordinal);
        Assert.Contains(Convert.ToHexStringLower(SHA256.HashData(op.Bundle(4, variant: 7))), refusal.Status.Detail, StringComparison.Ordinal);

        var lower = await Assert.ThrowsAsync<RpcException>(async () => await Client.SubmitBundleAsync(Request(op, 3, op.Bundle(3))));
        Assert.Equal(StatusCode.FailedPrecondition, lower.StatusCode);
        Assert.Equal("WITNESS_REFUSAL_EPOCH_NOT_INCREASING", lower.Trailers.GetValue(WitnessGrpcServiceReason));

        var listed = await Client.ListEquivocationsAsync(new ListEquivocationsRequest { Namespace = op.Namespace });
        var equivocation = Assert.Single(listed.Equivocations);
        Assert.Equal(4UL, equivocation.Epoch);
        Assert.Equal(SHA256.HashData(op.Bundle(4, variant: 7)), equivocation.AttemptedDigest.ToByteArray());
        Assert.Empty((await Client.ListEquivocationsAsync(new ListEquivocationsRequest { AfterId = equivocation.Id })).Equivocations);
        Assert.Equal(1UL, _witness.Log.TreeSize);
    }

    [Fact]
    public async Task UnauthenticatedSubmissions_AreRefused_AndChangeNothing()
    {
        var op = _setup.Operators[0];
        var bundle = op.Bundle(1);
        var unsigned = new SubmitBundleRequest { Namespace = op.Namespace, Epoch = 1, Bundle = ByteString.CopyFrom(bundle) };
        await AssertStatus(StatusCode.Unauthenticated, "operator_signature", () => Client.SubmitBundleAsync(unsigned).ResponseAsync);
        var wrong = Request(op, 1, bundle);
        wrong.OperatorSignature.Signature = ByteString.CopyFrom(_setup.Operators[1].Sign(1, bundle, op.Namespace));
        await AssertStatus(StatusCode.Unauthenticated, "not verified", () => Client.SubmitBundleAsync(wrong).ResponseAsync);
        var flipped = Request(op, 1, bundle);
        var bytes = flipped.OperatorSignature.Signature.ToByteArray();
        bytes[10] ^= 1;
        flipped.OperatorSignature.Signature = ByteString.CopyFrom(bytes);
        await AssertStatus(StatusCode.Unauthenticated, "not verified", () => Client.SubmitBundleAsync(flipped).ResponseAsync);
        Assert.Equal(0UL, _witness.Log.TreeSize);
        Assert.Empty((await Client.ListEquivocationsAsync(new ListEquivocationsRequest())).Equivocations);
    }

    [Fact]
    public async Task MalformedRequests_AreRefused_WithActionableStatuses()
    {
        var op = _setup.Operators[0];
        await Client.SubmitBundleAsync(Request(op, 1, op.Bundle(1)));

        await AssertStatus(StatusCode.InvalidArgument, "namespace", () => Client.SubmitBundleAsync(Request(op, 2, op.Bundle(2), ns: "bad namespace")).ResponseAsync);
        await AssertStatus(StatusCode.InvalidArgument, "namespace", () => Client.SubmitBundleAsync(Request(op, 2, op.Bundle(2), ns: "")).ResponseAsync);
        await AssertStatus(StatusCode.InvalidArgument, "epoch", () => Client.SubmitBundleAsync(Request(op, 0, op.Bundle(0))).ResponseAsync);
        await AssertStatus(StatusCode.InvalidArgument, "epoch", () => Client.SubmitBundleAsync(Request(op, ulong.MaxValue, op.Bundle(2))).ResponseAsync);
        await AssertStatus(StatusCode.InvalidArgument, "bundle", () => Client.SubmitBundleAsync(Request(op, 2, [])).ResponseAsync);
        await AssertStatus(StatusCode.InvalidArgument, "bundle", () => Client.SubmitBundleAsync(Request(op, 2, new byte[WitnessLog.MaxBundleBytes + 1])).ResponseAsync);
        await AssertStatus(StatusCode.ResourceExhausted, null, () => Client.SubmitBundleAsync(Request(op, 2, new byte[WitnessServer.MaxMessageBytes + 1])).ResponseAsync);
        var shortSignature = Request(op, 2, op.Bundle(2));
        shortSignature.OperatorSignature.Signature = ByteString.CopyFrom(new byte[63]);
        await AssertStatus(StatusCode.InvalidArgument, "64-byte", () => Client.SubmitBundleAsync(shortSignature).ResponseAsync);
        var badAlgorithm = Request(op, 2, op.Bundle(2));
        badAlgorithm.OperatorSignature.Algorithm = 99;
        await AssertStatus(StatusCode.InvalidArgument, "algorithm", () => Client.SubmitBundleAsync(badAlgorithm).ResponseAsync);
        await AssertStatus(StatusCode.NotFound, "not logged by this witness", () => Client.SubmitBundleAsync(Request(op, 2, op.Bundle(2), ns: "fleet-9")).ResponseAsync);

        await AssertStatus(StatusCode.NotFound, "nothing is logged", () => Client.GetBundleAsync(new GetBundleRequest { Namespace = op.Namespace, Epoch = 2 }).ResponseAsync);
        await AssertStatus(StatusCode.InvalidArgument, "epoch", () => Client.GetBundleAsync(new GetBundleRequest { Namespace = op.Namespace }).ResponseAsync);
        await AssertStatus(StatusCode.InvalidArgument, "namespace", () => Client.GetBundleAsync(new GetBundleRequest { Namespace = new string('a', 200), Epoch = 1 }).ResponseAsync);
        await AssertStatus(StatusCode.OutOfRange, "beyond", () => Client.GetCheckpointAsync(new GetCheckpointRequest { TreeSize = 2 }).ResponseAsync);
        await AssertStatus(StatusCode.InvalidArgument, "leaf_index", () => Client.GetInclusionProofAsync(new GetInclusionProofRequest { LeafIndex = 1, TreeSize = 1 }).ResponseAsync);
        await AssertStatus(StatusCode.InvalidArgument, "tree_size", () => Client.GetInclusionProofAsync(new GetInclusionProofRequest { LeafIndex = 0, TreeSize = 0 }).ResponseAsync);
        await AssertStatus(StatusCode.OutOfRange, "beyond", () => Client.GetInclusionProofAsync(new GetInclusionProofRequest { LeafIndex = 0, TreeSize = 9 }).ResponseAsync);
        await AssertStatus(StatusCode.InvalidArgument, "old_size", () => Client.GetConsistencyProofAsync(new GetConsistencyProofRequest { OldSize = 0, NewSize = 1 }).ResponseAsync);
        await AssertStatus(StatusCode.InvalidArgument, "old_size", () => Client.GetConsistencyProofAsync(new GetConsistencyProofRequest { OldSize = 2, NewSize = 1 }).ResponseAsync);
        await AssertStatus(StatusCode.OutOfRange, "beyond", () => Client.GetConsistencyProofAsync(new GetConsistencyProofRequest { OldSize = 1, NewSize = 5 }).ResponseAsync);
        await AssertStatus(StatusCode.InvalidArgument, "count", () => Client.GetEntriesAsync(new GetEntriesRequest { Start = 0, Count = 0 }).ResponseAsync);
        await AssertStatus(StatusCode.InvalidArgument, "count", () => Client.GetEntriesAsync(new GetEntriesRequest { Start = 0, Count = 65 }).ResponseAsync);
        await AssertStatus(StatusCode.OutOfRange, "start", () => Client.GetEntriesAsync(new GetEntriesRequest { Start = 1, Count = 1 }).ResponseAsync);
        await AssertStatus(StatusCode.InvalidArgument, "limit", () => Client.ListEquivocationsAsync(new ListEquivocationsRequest { Limit = 1000 }).ResponseAsync);

        // Nothing malformed changed the log.
        Assert.Equal(1UL, _witness.Log.TreeSize);
        Assert.Empty((await Client.ListEquivocationsAsync(new ListEquivocationsRequest())).Equivocations);
        Assert.Equal(1UL, _witness.Log.Audit().TreeSize);
    }

    private const string WitnessGrpcServiceReason = "hsmvault-reason";

    private static SubmitBundleRequest Request(FleetOperator op, ulong epoch, byte[] bundle, string? ns = null)
    {
        byte[] signature;
        try
        {
            signature = op.Sign(epoch, bundle, ns);
        }
        catch (Transparency.TransparencyException)
        {
            // The request is malformed on purpose; sign anything.
            signature = op.Sign(1, bundle.Length == 0 ? [0] : bundle);
        }

        return new SubmitBundleRequest
        {
            Namespace = ns ?? op.Namespace,
            Epoch = epoch,
            Bundle = ByteString.CopyFrom(bundle),
            OperatorSignature = new TaggedSignature { Algorithm = (uint)SignatureAlgorithm.EcdsaP256Sha256, Signature = ByteString.CopyFrom(signature) },
        };
    }

    private static async Task AssertStatus<T>(StatusCode code, string? detail, Func<Task<T>> call)
    {
        var refusal = await Assert.ThrowsAsync<RpcException>(async () => await call());
        Assert.Equal(code, refusal.StatusCode);
        if (detail is not null)
        {
            Assert.Contains(detail, refusal.Status.Detail, StringComparison.Ordinal);
        }
    }
}
