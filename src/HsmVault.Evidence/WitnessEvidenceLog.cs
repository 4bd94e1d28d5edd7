using System.Security.Cryptography;
using Grpc.Core;
using HsmVault.Protocol.V1;
using HsmVault.Transparency;
using HsmVault.Transparency.Merkle;
using HsmVault.Transparency.Notes;

namespace HsmVault.Evidence;

/// <summary>
/// Finds a fleet epoch's logged evidence digest at a witness, trusting nothing the witness says
/// that a pinned witness key does not vouch for: the checkpoint's note signature, the entry's
/// statement signature, the statement's namespace, epoch and bundle digest, and the entry's
/// inclusion in the checkpoint's tree.
/// </summary>
public sealed class WitnessEvidenceLog(Witness.WitnessClient client, IReadOnlyList<NoteVerifierKey> witnessKeys) : IEvidenceLog
{
    /// <inheritdoc/>
    public async Task<LoggedEvidence> FindAsync(string fleet, ulong epoch, CancellationToken cancellationToken)
    {
        LoggedBundleResponse response;
        try
        {
            response = await client.GetBundleAsync(new GetBundleRequest { Namespace = fleet, Epoch = epoch }, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (RpcException e)
        {
            throw new EvidenceLogException(e.StatusCode == StatusCode.NotFound
                ? $"the witness logged nothing for fleet '{fleet}' epoch {epoch} ({e.Status.Detail})"
                : $"the witness did not answer: {e.StatusCode}: {e.Status.Detail}", e);
        }

        try
        {
            var (key, checkpoint) = WitnessKeys.OpenCheckpoint(response.Checkpoint, witnessKeys);
            var entry = response.Entry ?? throw new EvidenceLogException("the witness answered without an entry");
            var statementBytes = entry.Statement.ToByteArray();
            var statement = WitnessStatement.Decode(statementBytes);
            if (entry.WitnessSignature is null || !key.SigningKey.Verifies(statementBytes, entry.WitnessSignature.Signature.Span))
            {
                throw new EvidenceLogException($"entry {entry.LeafIndex}: the witness's signature of its statement does not verify under {key.VerifierKey}");
            }

            if (statement.Namespace != fleet || statement.Epoch != epoch)
            {
                throw new EvidenceLogException($"the witness answered with the entry of '{statement.Namespace}' epoch {statement.Epoch}, not fleet '{fleet}' epoch {epoch}");
            }

            var bundle = entry.Bundle.ToByteArray();
            if (!SHA256.HashData(bundle).AsSpan().SequenceEqual(statement.Digest))
            {
                throw new EvidenceLogException($"entry {entry.LeafIndex}: the bundle served is not the one logged (its SHA-256 is not the statement's digest)");
            }

            MerkleVerifier.VerifyInclusion(entry.LeafIndex, checkpoint.TreeSize, MerkleHash.Leaf(statementBytes),
                [.. response.InclusionProof.Select(p => p.ToByteArray())], checkpoint.RootHash);
            return new LoggedEvidence(
                LoggedBundles.EvidenceDigestOf(bundle),
                $"entry {entry.LeafIndex} of log '{checkpoint.Origin}' (checkpoint of size {checkpoint.TreeSize} signed by {key.VerifierKey}, inclusion verified)");
        }
        catch (TransparencyException e)
        {
            throw new EvidenceLogException($"what the witness logged for fleet '{fleet}' epoch {epoch} does not verify: {e.Message}", e);
        }
    }
}

/// <summary>Picks the pinned witness key that signed a checkpoint.</summary>
internal static class WitnessKeys
{
    public static (NoteVerifierKey Key, Checkpoint Checkpoint) OpenCheckpoint(string note, IReadOnlyList<NoteVerifierKey> keys)
    {
        var reasons = new List<string>();
        foreach (var key in keys)
        {
            try
            {
                return (key, Checkpoint.Open(note, key, key.Name));
            }
            catch (TransparencyException e)
            {
                reasons.Add($"{key.VerifierKey}: {e.Message}");
            }
        }

        throw new TransparencyException($"the witness's checkpoint verifies under none of the pinned witness keys ({string.Join("; ", reasons)})");
    }
}
