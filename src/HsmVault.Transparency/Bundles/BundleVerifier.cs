using System.Security.Cryptography;
using HsmVault.Crypto.Signatures;
using HsmVault.Transparency.Merkle;
using HsmVault.Transparency.Notes;

namespace HsmVault.Transparency.Bundles;

/// <summary>
/// What a client trusts before it has seen any fleet: the witnesses' note keys (pinned), how
/// many of them must attest a bundle, and the operator's keys. Nothing about the fleet itself.
/// </summary>
/// <param name="WitnessKeys">Pinned witness keys (C2SP verifier keys; the key name is the witness's log origin).</param>
/// <param name="RequiredWitnesses">k of the policy "k of n": distinct pinned witnesses whose attestation must verify.</param>
/// <param name="OperatorKeys">Keys of which one must have signed the bundle's witness submission.</param>
public sealed record BundleTrustPolicy(IReadOnlyList<NoteVerifierKey> WitnessKeys, int RequiredWitnesses, IReadOnlyList<SigningKeyDescription> OperatorKeys)
{
    /// <summary>Throws unless the policy can be met: 1 &lt;= k &lt;= n and at least one operator key.</summary>
    /// <exception cref="ArgumentException">It cannot.</exception>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(WitnessKeys);
        ArgumentNullException.ThrowIfNull(OperatorKeys);
        if (RequiredWitnesses < 1 || RequiredWitnesses > WitnessKeys.Count)
        {
            throw new ArgumentException($"the witness policy must require 1..{WitnessKeys.Count} of the {WitnessKeys.Count} pinned witnesses; it requires {RequiredWitnesses}");
        }

        if (OperatorKeys.Count == 0)
        {
            throw new ArgumentException("pin at least one operator key");
        }
    }
}

/// <summary>A consistency proof between two sizes of one witness's log, which a client fetched for <see cref="BundleVerifier"/>.</summary>
/// <param name="WitnessKeyName">Whose log.</param>
/// <param name="OldSize">The smaller tree size.</param>
/// <param name="NewSize">The larger tree size.</param>
public sealed record ConsistencyProofRequest(string WitnessKeyName, ulong OldSize, ulong NewSize);

/// <summary>A bundle that passed every check, with the checkpoints that proved it logged.</summary>
/// <param name="Bundle">The decoded bundle.</param>
/// <param name="Encoded">Its canonical bytes.</param>
/// <param name="Digest">SHA-256 of <paramref name="Encoded"/>.</param>
/// <param name="Checkpoints">For each attesting witness: its key name, the verified checkpoint and its note.</param>
public sealed record VerifiedBundle(ValidationBundle Bundle, byte[] Encoded, byte[] Digest, IReadOnlyList<(string WitnessKeyName, Checkpoint Checkpoint, string Note)> Checkpoints)
{
    /// <summary>The fleet this one's users move to, verified in full, when the fleet names one; the bundle itself was then verified as its predecessor.</summary>
    public VerifiedBundle? Successor { get; init; }

    /// <summary>
    /// Throws unless <paramref name="serverPublicKey"/> (from KE2 or a RegistrationResponse) is
    /// the bundle's OPAQUE server key: a server with another key is not this fleet.
    /// </summary>
    /// <exception cref="BundleRefusedException">It is not (<see cref="BundleRefusal.OpaqueKeyMismatch"/>).</exception>
    public void RequireOpaqueServerKey(ReadOnlySpan<byte> serverPublicKey)
    {
        var expected = Bundle.OpaqueServerKey;
        if (!CryptographicOperations.FixedTimeEquals(expected, serverPublicKey))
        {
            throw new BundleRefusedException(BundleRefusal.OpaqueKeyMismatch,
                $"the server's OPAQUE key {Convert.ToHexStringLower(serverPublicKey)} is not the key {Convert.ToHexStringLower(expected)} of fleet '{Bundle.FleetId}' epoch {Bundle.Epoch}");
        }
    }
}

/// <summary>
/// The one place a validation bundle is verified. A bundle is accepted only when: it decodes
/// canonically; a pinned operator key signed its witness submission; it is not past its
/// not-after; its epoch is not below the highest the client accepted for its namespace (and an
/// equal epoch has the same digest); and at least k distinct pinned witnesses attest it, each
/// with a statement about exactly this namespace, epoch and digest, a valid witness signature,
/// the fleet's countersignature of that signature under the bundle's own fleet signing key, a
/// checkpoint signed by the witness, an inclusion proof of the statement in that checkpoint,
/// and that checkpoint consistent with the last one the client saw from the same witness.
/// Every refusal is a <see cref="BundleRefusedException"/> whose <see cref="BundleRefusal"/>
/// and message name what failed.
/// </summary>
public sealed class BundleVerifier
{
    private readonly BundleTrustPolicy _policy;
    private readonly TimeProvider _time;

    /// <summary>A verifier for <paramref name="policy"/>, reading the time from <paramref name="time"/> (the system clock by default).</summary>
    /// <exception cref="ArgumentException">The policy cannot be met.</exception>
    public BundleVerifier(BundleTrustPolicy policy, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(policy);
        policy.Validate();
        _policy = policy;
        _time = time ?? TimeProvider.System;
    }

    /// <summary>
    /// The consistency proofs <see cref="Verify"/> needs for <paramref name="received"/> given
    /// <paramref name="state"/>: one per pinned witness whose attested checkpoint differs in size
    /// from the last one the client saw. Fetch them (from the witness, or the fleet's bundle RPC).
    /// </summary>
    public IReadOnlyList<ConsistencyProofRequest> ProofsNeeded(SignedValidationBundle received, ClientTrustState state)
    {
        ArgumentNullException.ThrowIfNull(received);
        ArgumentNullException.ThrowIfNull(state);
        var needed = new List<ConsistencyProofRequest>();
        foreach (var attestation in received.Attestations)
        {
            var key = PinnedKey(attestation);
            if (key is null || state.LastCheckpoint(key.Name) is not { } last)
            {
                continue;
            }

            try
            {
                var size = Checkpoint.ParseText(SignedNote.Open(attestation.Checkpoint, key)).TreeSize;
                if (size != last.TreeSize)
                {
                    needed.Add(new ConsistencyProofRequest(key.Name, Math.Min(size, last.TreeSize), Math.Max(size, last.TreeSize)));
                }
            }
            catch (TransparencyException)
            {
                // Verify names the broken checkpoint.
            }
        }

        return needed;
    }

    /// <summary>
    /// Verifies <paramref name="received"/> against the policy and what the client saw before
    /// (<paramref name="state"/>, not changed: call <see cref="ClientTrustState.Accept"/> with the
    /// result, then save it).
    /// </summary>
    /// <param name="received">The bundle as received.</param>
    /// <param name="state">The client's trust state.</param>
    /// <param name="consistencyProofs">Proofs for <see cref="ProofsNeeded"/>; a missing one refuses the witness's attestation.</param>
    /// <param name="successor">
    /// When <paramref name="received"/> is the fleet a user leaves: its already verified successor. The bundle must then be an
    /// earlier epoch of the same namespace and another fleet, and its not-after and the highest epoch seen do not apply.
    /// </param>
    /// <exception cref="BundleRefusedException">The bundle is refused; the reason and message say why.</exception>
    public VerifiedBundle Verify(
        SignedValidationBundle received,
        ClientTrustState state,
        IReadOnlyDictionary<ConsistencyProofRequest, IReadOnlyList<byte[]>>? consistencyProofs = null,
        ValidationBundle? successor = null)
    {
        ArgumentNullException.ThrowIfNull(received);
        ArgumentNullException.ThrowIfNull(state);
        ValidationBundle bundle;
        try
        {
            bundle = BundleCodec.Decode(received.Bundle);
        }
        catch (TransparencyException e)
        {
            throw new BundleRefusedException(BundleRefusal.Malformed, e.Message, e);
        }

        var digest = BundleCodec.Digest(received.Bundle);
        var what = $"bundle of '{bundle.Namespace}' epoch {bundle.Epoch} (digest {Convert.ToHexStringLower(digest)})";
        VerifyOperatorSignature(received, bundle, digest, what);

        if (successor is not null)
        {
            // The predecessor of a verified successor: the fleet a user leaves. Its not-after and the
            // highest epoch seen do not apply (a retired fleet's users must still be able to leave it,
            // also after the client accepted the successor's epoch); every signature and proof does.
            if (bundle.Namespace != successor.Namespace || bundle.Epoch >= successor.Epoch || bundle.FleetId == successor.FleetId)
            {
                throw new BundleRefusedException(BundleRefusal.SuccessorInvalid,
                    $"the {what} of fleet '{bundle.FleetId}' names as its successor fleet '{successor.FleetId}' of '{successor.Namespace}' epoch {successor.Epoch}: "
                    + "a successor is a later epoch of the same namespace and another fleet");
            }
        }
        else
        {
            RequireCurrent(bundle, digest, state, what);
        }

        var verified = new List<(string, Checkpoint, string)>();
        var failures = new List<BundleRefusedException>();
        foreach (var attestation in received.Attestations)
        {
            if (verified.Any(v => v.Item1 == attestation.WitnessKeyName))
            {
                continue;
            }

            try
            {
                verified.Add(VerifyAttestation(attestation, bundle, digest, state, consistencyProofs));
            }
            catch (BundleRefusedException e) when (e.Reason != BundleRefusal.CheckpointInconsistent)
            {
                // A witness that disagrees with its own earlier checkpoint has forked its log:
                // that refuses the bundle whatever the others say. Other failures only mean
                // this attestation does not count.
                failures.Add(e);
            }
        }

        if (verified.Count < _policy.RequiredWitnesses)
        {
            var summary = $"{verified.Count} of the {_policy.RequiredWitnesses} pinned witnesses the policy requires attest the {what}";
            // The most telling failure names the refusal; an unknown witness only when nothing else failed.
            var first = failures.FirstOrDefault(f => f.Reason != BundleRefusal.UnknownWitness) ?? failures.FirstOrDefault();
            throw first is null
                ? new BundleRefusedException(BundleRefusal.TooFewWitnesses, summary)
                : new BundleRefusedException(first.Reason, $"{summary}; {string.Join("; ", failures.Select(f => f.Message))}", first);
        }

        return new VerifiedBundle(bundle, received.Bundle, digest, verified);
    }

    /// <summary>A bundle a client follows: not past its not-after, no older than the highest epoch seen, and the one digest of its epoch.</summary>
    private void RequireCurrent(ValidationBundle bundle, byte[] digest, ClientTrustState state, string what)
    {
        var now = _time.GetUtcNow();
        if ((ulong)now.ToUnixTimeMilliseconds() > bundle.NotAfterUnixMs)
        {
            throw new BundleRefusedException(BundleRefusal.Expired, $"the {what} expired at {bundle.NotAfter:O}; it is now {now:O}");
        }

        if (state.HighestEpoch(bundle.Namespace) is { } highest)
        {
            if (bundle.Epoch < highest.Epoch)
            {
                throw new BundleRefusedException(BundleRefusal.EpochRolledBack,
                    $"the {what} is older than epoch {highest.Epoch}, which this client already accepted: a rollback to an older fleet");
            }

            if (bundle.Epoch == highest.Epoch && !highest.Digest.AsSpan().SequenceEqual(digest))
            {
                throw new BundleRefusedException(BundleRefusal.EpochEquivocation,
                    $"the {what} is a second digest for epoch {bundle.Epoch}; this client accepted digest {Convert.ToHexStringLower(highest.Digest)} for it");
            }
        }
    }

    private void VerifyOperatorSignature(SignedValidationBundle received, ValidationBundle bundle, byte[] digest, string what)
    {
        if (received.OperatorSignature is not { } signature)
        {
            throw new BundleRefusedException(BundleRefusal.OperatorSignatureInvalid, $"the {what} carries no operator signature");
        }

        var message = WitnessSubmission.SignedMessage(bundle.Namespace, bundle.Epoch, digest);
        if (!_policy.OperatorKeys.Any(key => signature.IsBy(key, message)))
        {
            throw new BundleRefusedException(BundleRefusal.OperatorSignatureInvalid,
                $"the operator signature ({signature.Algorithm}) of the {what} verifies under none of the pinned operator keys ({string.Join(", ", _policy.OperatorKeys.Select(k => k.Fingerprint()))})");
        }
    }

    private NoteVerifierKey? PinnedKey(WitnessAttestation attestation) =>
        _policy.WitnessKeys.FirstOrDefault(k => k.Name == attestation.WitnessKeyName && k.KeyId == attestation.WitnessKeyId);

    private (string, Checkpoint, string) VerifyAttestation(
        WitnessAttestation attestation,
        ValidationBundle bundle,
        byte[] digest,
        ClientTrustState state,
        IReadOnlyDictionary<ConsistencyProofRequest, IReadOnlyList<byte[]>>? consistencyProofs)
    {
        var name = $"witness '{attestation.WitnessKeyName}' (key ID {attestation.WitnessKeyId:x8})";
        var key = PinnedKey(attestation)
            ?? throw new BundleRefusedException(BundleRefusal.UnknownWitness, $"{name} is not a pinned witness");

        WitnessStatement statement;
        try
        {
            statement = WitnessStatement.Decode(attestation.Statement);
        }
        catch (TransparencyException e)
        {
            throw new BundleRefusedException(BundleRefusal.WitnessSignatureInvalid, $"{name}: {e.Message}", e);
        }

        if (statement.Namespace != bundle.Namespace || statement.Epoch != bundle.Epoch || !statement.Digest.AsSpan().SequenceEqual(digest))
        {
            throw new BundleRefusedException(BundleRefusal.WitnessSignatureInvalid,
                $"{name} signed '{statement.Namespace}' epoch {statement.Epoch} digest {Convert.ToHexStringLower(statement.Digest)}, not this bundle");
        }

        if (statement.Ciphersuite != SignatureAlgorithm.Ed25519 || !attestation.WitnessSignature.IsBy(key.SigningKey, attestation.Statement))
        {
            throw new BundleRefusedException(BundleRefusal.WitnessSignatureInvalid, $"{name}: the signature of its statement does not verify under the pinned key");
        }

        if (attestation.FleetCountersignature is not { } countersignature)
        {
            throw new BundleRefusedException(BundleRefusal.MissingCountersignature, $"{name}: the fleet did not countersign this witness's signature");
        }

        var fleetKey = bundle.FleetSigningKey;
        if (!countersignature.IsBy(fleetKey, FleetCountersignature.SignedMessage(attestation.WitnessSignature.Signature)))
        {
            throw new BundleRefusedException(BundleRefusal.CountersignatureInvalid,
                $"{name}: the fleet countersignature ({countersignature.Algorithm}) does not verify under the bundle's fleet signing key {fleetKey.Fingerprint()}");
        }

        Checkpoint checkpoint;
        try
        {
            checkpoint = Checkpoint.Open(attestation.Checkpoint, key, key.Name);
        }
        catch (TransparencyException e)
        {
            throw new BundleRefusedException(BundleRefusal.CheckpointInvalid, $"{name}: checkpoint: {e.Message}", e);
        }

        try
        {
            MerkleVerifier.VerifyInclusion(attestation.LeafIndex, checkpoint.TreeSize, MerkleHash.Leaf(attestation.Statement), attestation.InclusionProof, checkpoint.RootHash);
        }
        catch (TransparencyException e)
        {
            throw new BundleRefusedException(BundleRefusal.InclusionProofInvalid, $"{name}: {e.Message}", e);
        }

        if (state.LastCheckpoint(key.Name) is { } last)
        {
            VerifyConsistency(name, key.Name, last, checkpoint, consistencyProofs);
        }

        return (key.Name, checkpoint, attestation.Checkpoint);
    }

    private static void VerifyConsistency(
        string name, string keyName, Checkpoint last, Checkpoint current, IReadOnlyDictionary<ConsistencyProofRequest, IReadOnlyList<byte[]>>? proofs)
    {
        var (older, newer) = last.TreeSize <= current.TreeSize ? (last, current) : (current, last);
        var request = new ConsistencyProofRequest(keyName, older.TreeSize, newer.TreeSize);
        IReadOnlyList<byte[]> proof = [];
        if (older.TreeSize != newer.TreeSize && (proofs is null || !proofs.TryGetValue(request, out proof!)))
        {
            throw new BundleRefusedException(BundleRefusal.ConsistencyUnproven,
                $"{name}: its checkpoint has size {current.TreeSize}, the last one seen {last.TreeSize}, and no consistency proof between them came with the bundle");
        }

        try
        {
            MerkleVerifier.VerifyConsistency(older.TreeSize, newer.TreeSize, older.RootHash, newer.RootHash, proof);
        }
        catch (TransparencyException e)
        {
            throw new BundleRefusedException(BundleRefusal.CheckpointInconsistent,
                $"{name}: its checkpoint (size {current.TreeSize}, root {Convert.ToHexStringLower(current.RootHash)}) is not consistent with the one seen before (size {last.TreeSize}, root {Convert.ToHexStringLower(last.RootHash)}): {e.Message}", e);
        }
    }
}
