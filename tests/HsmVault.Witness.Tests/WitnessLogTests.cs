using System.Security.Cryptography;
using HsmVault.Crypto.Signatures;
using HsmVault.Hsm;
using HsmVault.Transparency;
using HsmVault.Transparency.Merkle;
using HsmVault.Transparency.Notes;
using HsmVault.Witness.Tests.Support;
using Microsoft.Extensions.Logging.Abstractions;

namespace HsmVault.Witness.Tests;

/// <summary>The log itself (no network): one digest per epoch, equivocations recorded, restarts, audit.</summary>
public sealed class WitnessLogTests : IDisposable
{
    private readonly WitnessSetup _setup = new();

    [Fact]
    public async Task Submit_LogsSignedStatement_ProvableInTheCheckpoint()
    {
        using var log = Open(out var key);
        using var _ = key;
        var op = _setup.Operators[0];
        var bundle = op.Bundle(1);
        var logged = await log.SubmitAsync(op.Submission(1, bundle), CancellationToken.None);

        Assert.False(logged.AlreadyLogged);
        Assert.Equal(0UL, logged.Entry.LeafIndex);
        Assert.Equal(op.Namespace, logged.Entry.Statement.Namespace);
        Assert.Equal(1UL, logged.Entry.Statement.Epoch);
        Assert.Equal(SHA256.HashData(bundle), logged.Entry.Statement.Digest);
        Assert.Equal(SignatureAlgorithm.Ed25519, logged.Entry.Statement.Ciphersuite);
        Assert.True(_setup.NoteKey.SigningKey.Verifies(logged.Entry.StatementBytes, logged.Entry.Signature));
        var checkpoint = Checkpoint.Open(logged.CheckpointNote, _setup.NoteKey, _setup.Origin);
        Assert.Equal(1UL, checkpoint.TreeSize);
        MerkleVerifier.VerifyInclusion(0, 1, MerkleHash.Leaf(logged.Entry.StatementBytes), logged.InclusionProof, checkpoint.RootHash);
    }

    [Fact]
    public async Task SameBundleAgain_ReturnsTheLoggedEntry_AndAddsNothing()
    {
        using var log = Open(out var key);
        using var _ = key;
        var op = _setup.Operators[0];
        var first = await log.SubmitAsync(op.Submission(1, op.Bundle(1)), CancellationToken.None);
        var again = await log.SubmitAsync(op.Submission(1, op.Bundle(1)), CancellationToken.None);
        Assert.True(again.AlreadyLogged);
        Assert.Equal(first.Entry.StatementBytes, again.Entry.StatementBytes);
        Assert.Equal(first.Entry.Signature, again.Entry.Signature);
        Assert.Equal(1UL, log.TreeSize);
    }

    [Fact]
    public async Task SecondDigestForAnEpoch_IsRefused_RecordedAndListed()
    {
        using var log = Open(out var key);
        using var _ = key;
        var op = _setup.Operators[0];
        await log.SubmitAsync(op.Submission(1, op.Bundle(1)), CancellationToken.None);
        var forged = op.Submission(1, op.Bundle(1, variant: 1));
        var refusal = await Assert.ThrowsAsync<WitnessException>(() => log.SubmitAsync(forged, CancellationToken.None));

        Assert.Equal(WitnessErrorKind.Equivocation, refusal.Kind);
        var logged = Convert.ToHexStringLower(SHA256.HashData(op.Bundle(1)));
        var attempted = Convert.ToHexStringLower(SHA256.HashData(op.Bundle(1, variant: 1)));
        Assert.Contains(op.Namespace, refusal.Message, StringComparison.Ordinal);
        Assert.Contains("epoch 1", refusal.Message, StringComparison.Ordinal);
        Assert.Contains(logged, refusal.Message, StringComparison.Ordinal);
        Assert.Contains(attempted, refusal.Message, StringComparison.Ordinal);
        Assert.Equal(1UL, log.TreeSize);

        var recorded = Assert.Single(log.ListEquivocations(null, 0, 10));
        Assert.Equal(op.Namespace, recorded.Namespace);
        Assert.Equal(1UL, recorded.Epoch);
        Assert.Equal(logged, Convert.ToHexStringLower(recorded.LoggedDigest));
        Assert.Equal(attempted, Convert.ToHexStringLower(recorded.AttemptedDigest));
        // The operator's own signature of the second digest: evidence anyone can check.
        Assert.True(op.PublicKey.Verifies(WitnessSubmission.SignedMessage(op.Namespace, 1, recorded.AttemptedDigest), recorded.OperatorSignature));
        Assert.Empty(log.ListEquivocations(_setup.Operators[1].Namespace, 0, 10));

        // The same attempt again is refused again and recorded once.
        await Assert.ThrowsAsync<WitnessException>(() => log.SubmitAsync(forged, CancellationToken.None));
        Assert.Single(log.ListEquivocations(null, 0, 10));
    }

    [Fact]
    public async Task EpochNotAboveTheLatest_IsRefused_WithoutChangingTheLog()
    {
        using var log = Open(out var key);
        using var _ = key;
        var op = _setup.Operators[0];
        await log.SubmitAsync(op.Submission(5, op.Bundle(5)), CancellationToken.None);
        var lower = await Assert.ThrowsAsync<WitnessException>(() => log.SubmitAsync(op.Submission(3, op.Bundle(3)), CancellationToken.None));
        Assert.Equal(WitnessErrorKind.EpochNotIncreasing, lower.Kind);
        Assert.Contains("latest logged epoch 5", lower.Message, StringComparison.Ordinal);
        // Another namespace has its own epochs.
        await log.SubmitAsync(_setup.Operators[1].Submission(1, _setup.Operators[1].Bundle(1)), CancellationToken.None);
        await log.SubmitAsync(op.Submission(6, op.Bundle(6)), CancellationToken.None);
        Assert.Equal(3UL, log.TreeSize);
        Assert.Empty(log.ListEquivocations(null, 0, 10));
    }

    [Fact]
    public async Task UnsignedOrWronglySignedSubmissions_AreRefused()
    {
        using var log = Open(out var key);
        using var _ = key;
        var op = _setup.Operators[0];
        var other = _setup.Operators[1];
        var bundle = op.Bundle(1);
        // Signed by another namespace's operator.
        var foreign = new BundleSubmission(op.Namespace, 1, bundle, SignatureAlgorithm.EcdsaP256Sha256, other.Sign(1, bundle, op.Namespace));
        Assert.Equal(WitnessErrorKind.Unauthenticated, (await Assert.ThrowsAsync<WitnessException>(() => log.SubmitAsync(foreign, CancellationToken.None))).Kind);
        // Signed for another epoch, or another bundle.
        var replayed = new BundleSubmission(op.Namespace, 2, bundle, SignatureAlgorithm.EcdsaP256Sha256, op.Sign(1, bundle));
        Assert.Equal(WitnessErrorKind.Unauthenticated, (await Assert.ThrowsAsync<WitnessException>(() => log.SubmitAsync(replayed, CancellationToken.None))).Kind);
        var swapped = new BundleSubmission(op.Namespace, 1, op.Bundle(1, variant: 9), SignatureAlgorithm.EcdsaP256Sha256, op.Sign(1, bundle));
        Assert.Equal(WitnessErrorKind.Unauthenticated, (await Assert.ThrowsAsync<WitnessException>(() => log.SubmitAsync(swapped, CancellationToken.None))).Kind);
        // The right bytes under the wrong algorithm tag.
        var mislabelled = new BundleSubmission(op.Namespace, 1, bundle, SignatureAlgorithm.Ed25519, op.Sign(1, bundle));
        Assert.Equal(WitnessErrorKind.Unauthenticated, (await Assert.ThrowsAsync<WitnessException>(() => log.SubmitAsync(mislabelled, CancellationToken.None))).Kind);
        var unknown = new BundleSubmission("fleet-unknown", 1, bundle, SignatureAlgorithm.EcdsaP256Sha256, op.Sign(1, bundle, "fleet-unknown"));
        Assert.Equal(WitnessErrorKind.NotFound, (await Assert.ThrowsAsync<WitnessException>(() => log.SubmitAsync(unknown, CancellationToken.None))).Kind);
        Assert.Equal(0UL, log.TreeSize);
        Assert.Empty(log.ListEquivocations(null, 0, 10));
    }

    [Fact]
    public async Task Restart_KeepsEveryEntry_AndTheReplayVerifies()
    {
        var logged = new List<LoggedBundleProof>();
        using (var log = Open(out var key))
        {
            using var _ = key;
            for (ulong epoch = 1; epoch <= 5; epoch++)
            {
                foreach (var op in _setup.Operators)
                {
                    logged.Add(await log.SubmitAsync(op.Submission(epoch, op.Bundle(epoch)), CancellationToken.None));
                }
            }
        }

        using (var reopened = Open(out var key))
        {
            using var _ = key;
            Assert.Equal(10UL, reopened.TreeSize);
            var latest = Checkpoint.Open(reopened.LatestCheckpoint!, _setup.NoteKey, _setup.Origin);
            foreach (var entry in logged)
            {
                var found = await reopened.GetBundleAsync(entry.Entry.Statement.Namespace, entry.Entry.Statement.Epoch, CancellationToken.None);
                Assert.Equal(entry.Entry.StatementBytes, found.Entry.StatementBytes);
                MerkleVerifier.VerifyInclusion(entry.Entry.LeafIndex, 10, MerkleHash.Leaf(found.Entry.StatementBytes), found.InclusionProof, latest.RootHash);
                var old = Checkpoint.Open(entry.CheckpointNote, _setup.NoteKey, _setup.Origin);
                MerkleVerifier.VerifyConsistency(old.TreeSize, 10, old.RootHash, latest.RootHash, reopened.GetConsistencyProof(old.TreeSize, 10));
                Assert.Equal(entry.CheckpointNote, reopened.GetCheckpoint(old.TreeSize));
            }

            var report = reopened.Audit();
            Assert.Equal(10UL, report.TreeSize);
            Assert.Equal(10, report.CheckpointsVerified);
            Assert.Equal(5UL, report.LatestEpochs["fleet-1"]);

            // Epochs carry on from the stored history.
            var op = _setup.Operators[0];
            await Assert.ThrowsAsync<WitnessException>(() => reopened.SubmitAsync(op.Submission(5, op.Bundle(5, variant: 2)), CancellationToken.None));
            await reopened.SubmitAsync(op.Submission(6, op.Bundle(6)), CancellationToken.None);
        }
    }

    [Fact]
    public void Open_WithAnotherOriginOrKey_IsRefused()
    {
        using (Open(out var key))
        {
            key.Dispose();
        }

        var options = _setup.Options();
        options.Origin = "another.test/log";
        using var key2 = TokenSigningKey.Open(_setup.Token, WitnessSetup.KeyLabel, generateIfMissing: false);
        var refusal = Assert.Throws<InvalidDataException>(() => WitnessLog.Open(options, new TokenWitnessSigner(key2), TimeProvider.System, NullLogger.Instance));
        Assert.Contains("origin", refusal.Message, StringComparison.Ordinal);

        using var otherKey = TokenSigningKey.Open(_setup.Token, "another-key", generateIfMissing: true);
        var wrongKey = Assert.Throws<InvalidDataException>(() => WitnessLog.Open(_setup.Options(), new TokenWitnessSigner(otherKey), TimeProvider.System, NullLogger.Instance));
        Assert.Contains("witness key", wrongKey.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Auditor_RefusesATamperedLog()
    {
        var entries = new List<LogEntry>();
        var notes = new List<string>();
        using (var log = Open(out var key))
        {
            using var _ = key;
            foreach (var op in _setup.Operators)
            {
                var logged = await log.SubmitAsync(op.Submission(1, op.Bundle(1)), CancellationToken.None);
                entries.Add(new LogEntry(logged.Entry.LeafIndex, logged.Entry.StatementBytes, logged.Entry.Signature));
                notes.Add(logged.CheckpointNote);
            }
        }

        Assert.Equal(2UL, LogAuditor.Replay(_setup.Origin, _setup.NoteKey, entries, notes).TreeSize);
        // A statement altered after signing, an entry left out, a checkpoint missing at the end.
        var altered = entries.Select(e => e with { }).ToList();
        altered[1] = altered[1] with { Statement = [.. altered[1].Statement[..^1], (byte)(altered[1].Statement[^1] ^ 1)] };
        Assert.Throws<TransparencyException>(() => LogAuditor.Replay(_setup.Origin, _setup.NoteKey, altered, notes));
        Assert.Throws<TransparencyException>(() => LogAuditor.Replay(_setup.Origin, _setup.NoteKey, entries[1..], notes));
        Assert.Throws<TransparencyException>(() => LogAuditor.Replay(_setup.Origin, _setup.NoteKey, entries, notes[..1]));
        Assert.Throws<TransparencyException>(() => LogAuditor.Replay(_setup.Origin, _setup.NoteKey, [entries[1], entries[0]], notes));
    }

    public void Dispose() => _setup.Dispose();

    private WitnessLog Open(out TokenSigningKey key)
    {
        key = TokenSigningKey.Open(_setup.Token, WitnessSetup.KeyLabel, generateIfMissing: false);
        return WitnessLog.Open(_setup.Options(), new TokenWitnessSigner(key), TimeProvider.System, NullLogger.Instance);
    }
}
