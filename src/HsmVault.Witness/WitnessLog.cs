using System.Security.Cryptography;
using HsmVault.Crypto.Signatures;
using HsmVault.Transparency;
using HsmVault.Transparency.Merkle;
using HsmVault.Transparency.Notes;
using HsmVault.Witness.Storage;
using Microsoft.Extensions.Logging;

namespace HsmVault.Witness;

/// <summary>
/// The witness: an append-only RFC 9162 log of bundle statements with exactly one digest per
/// (namespace, epoch), a C2SP checkpoint signed at every tree size, and proofs for any size.
/// Submissions are serialized; each is acknowledged only after its entry, the tree size it
/// completes and that size's signed checkpoint are committed together. Reads are answered
/// from memory (tree, latest checkpoint) or the store and never wait for a submission.
/// </summary>
public sealed partial class WitnessLog : IDisposable
{
    /// <summary>Largest bundle accepted.</summary>
    public const int MaxBundleBytes = 32 * 1024;

    /// <summary>Most entries one <see cref="GetEntries"/> call returns.</summary>
    public const int MaxEntriesPerRead = 64;

    /// <summary>Most equivocations one <see cref="ListEquivocations"/> call returns.</summary>
    public const int MaxEquivocationsPerRead = 256;

    private const string OriginMetaKey = "origin";
    private const string VerifierKeyMetaKey = "verifier_key";

    private readonly WitnessStore _store;
    private readonly IWitnessSigner _signer;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Dictionary<string, SigningKeyDescription[]> _operatorKeys;
    private readonly SemaphoreSlim _submitGate = new(1, 1);

    // Guarded by _stateLock. The tree may hold one uncommitted leaf during a submission;
    // readers only ever ask about sizes up to _committedSize.
    private readonly Lock _stateLock = new();
    private readonly MerkleTree _tree;
    private readonly Dictionary<string, ulong> _latestEpochs;
    private ulong _committedSize;
    private string? _latestCheckpoint;

    private WitnessLog(WitnessStore store, IWitnessSigner signer, string origin, NoteVerifierKey noteKey, MerkleTree tree,
        Dictionary<string, ulong> latestEpochs, string? latestCheckpoint, Dictionary<string, SigningKeyDescription[]> operatorKeys, TimeProvider time, ILogger logger)
    {
        _store = store;
        _signer = signer;
        Origin = origin;
        NoteKey = noteKey;
        _tree = tree;
        _committedSize = tree.Size;
        _latestEpochs = latestEpochs;
        _latestCheckpoint = latestCheckpoint;
        _operatorKeys = operatorKeys;
        _time = time;
        _logger = logger;
    }

    /// <summary>The log's origin: first line of its checkpoints and name of its key.</summary>
    public string Origin { get; }

    /// <summary>The witness key as a note verifier key; its <see cref="NoteVerifierKey.VerifierKey"/> text is what clients pin.</summary>
    public NoteVerifierKey NoteKey { get; }

    /// <summary>Number of committed entries.</summary>
    public ulong TreeSize
    {
        get
        {
            lock (_stateLock)
            {
                return _committedSize;
            }
        }
    }

    /// <summary>
    /// Opens the log in <see cref="WitnessOptions.DataDirectory"/>, creating it on first use, and
    /// rebuilds the tree from the stored leaves. A log keeps the origin and key it was created
    /// with: a configuration or token with another is refused.
    /// </summary>
    /// <exception cref="InvalidDataException">The stored log belongs to another origin or key, or its entries and checkpoints disagree.</exception>
    public static WitnessLog Open(WitnessOptions options, IWitnessSigner signer, TimeProvider time, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(signer);
        ArgumentNullException.ThrowIfNull(time);
        ArgumentNullException.ThrowIfNull(logger);
        var validation = new WitnessOptionsValidator().Validate(null, options);
        if (validation.Failed)
        {
            throw new Microsoft.Extensions.Options.OptionsValidationException(WitnessOptions.SectionName, typeof(WitnessOptions), validation.Failures);
        }

        var noteKey = NoteVerifierKey.Create(options.Origin, signer.PublicKey);
        var path = Path.Combine(Path.GetFullPath(options.DataDirectory), "witness.db");
        var store = WitnessStore.Open(path);
        try
        {
            CheckIdentity(store, path, OriginMetaKey, options.Origin, "origin");
            CheckIdentity(store, path, VerifierKeyMetaKey, noteKey.VerifierKey, "witness key");

            var tree = new MerkleTree();
            var latestEpochs = new Dictionary<string, ulong>(StringComparer.Ordinal);
            foreach (var (leafIndex, ns, epoch, leafHash) in store.ReadLeaves())
            {
                if (leafIndex != tree.Size)
                {
                    throw new InvalidDataException($"the log in '{path}' has no entry {tree.Size} but has entry {leafIndex}");
                }

                tree.Append(leafHash);
                latestEpochs[ns] = Math.Max(epoch, latestEpochs.GetValueOrDefault(ns));
            }

            var latest = store.ReadLatestCheckpoint();
            if (latest is { } checkpoint)
            {
                var parsed = Checkpoint.Open(checkpoint.Note, noteKey, options.Origin);
                if (checkpoint.TreeSize != tree.Size || !parsed.RootHash.AsSpan().SequenceEqual(tree.RootHash(tree.Size)))
                {
                    throw new InvalidDataException(
                        $"the log in '{path}' holds {tree.Size} entries, but its latest checkpoint is for size {checkpoint.TreeSize} with another root");
                }
            }
            else if (tree.Size != 0)
            {
                throw new InvalidDataException($"the log in '{path}' holds {tree.Size} entries but no checkpoint");
            }

            var operatorKeys = options.Namespaces.ToDictionary(
                n => n.Name, n => n.OperatorKeys.Select(k => k.ToDescription()).ToArray(), StringComparer.Ordinal);
            Log.LogOpened(logger, options.Origin, tree.Size, noteKey.VerifierKey);
            return new WitnessLog(store, signer, options.Origin, noteKey, tree, latestEpochs, latest?.Note, operatorKeys, time, logger);
        }
        catch (TransparencyException e)
        {
            store.Dispose();
            throw new InvalidDataException($"the log in '{path}' does not verify: {e.Message}", e);
        }
        catch
        {
            store.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Logs <paramref name="submission"/>, or returns its entry if exactly this bundle is logged
    /// for its epoch already. Returns only once the entry is durable.
    /// </summary>
    /// <exception cref="WitnessException">
    /// Malformed (<see cref="WitnessErrorKind.InvalidArgument"/>), not signed by the namespace's
    /// operator (<see cref="WitnessErrorKind.Unauthenticated"/>), an unknown namespace
    /// (<see cref="WitnessErrorKind.NotFound"/>), another digest for a logged epoch
    /// (<see cref="WitnessErrorKind.Equivocation"/>, recorded), or an epoch not above the latest
    /// (<see cref="WitnessErrorKind.EpochNotIncreasing"/>).
    /// </exception>
    public async Task<LoggedBundleProof> SubmitAsync(BundleSubmission submission, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(submission);
        var ns = submission.Namespace;
        var epoch = submission.Epoch;
        Require(() => WitnessStatement.ValidateNamespace(ns));
        Require(() => WitnessStatement.ValidateEpoch(epoch));
        if (submission.Bundle.Length is 0 or > MaxBundleBytes)
        {
            throw new WitnessException(WitnessErrorKind.InvalidArgument, $"bundle must be 1..{MaxBundleBytes} bytes; it has {submission.Bundle.Length}");
        }

        if (!Enum.IsDefined(submission.OperatorAlgorithm) || submission.OperatorSignature.Length != SigningKeyDescription.SignatureBytes)
        {
            throw new WitnessException(WitnessErrorKind.InvalidArgument,
                $"operator_signature must be a {SigningKeyDescription.SignatureBytes}-byte signature with algorithm 1 (Ed25519) or 2 (ECDSA P-256)");
        }

        if (!_operatorKeys.TryGetValue(ns, out var keys))
        {
            throw new WitnessException(WitnessErrorKind.NotFound, $"namespace '{ns}' is not logged by this witness");
        }

        var digest = SHA256.HashData(submission.Bundle);
        var signed = WitnessSubmission.SignedMessage(ns, epoch, digest);
        if (!keys.Any(k => k.Algorithm == submission.OperatorAlgorithm && k.Verifies(signed, submission.OperatorSignature)))
        {
            Log.SubmissionUnauthenticated(_logger, ns, epoch);
            throw new WitnessException(WitnessErrorKind.Unauthenticated,
                $"operator_signature for namespace '{ns}' epoch {epoch} is not verified by any operator key of the namespace");
        }

        await _submitGate.WaitAsync(cancellationToken);
        try
        {
            if (_store.FindEntry(ns, epoch) is { } existing)
            {
                if (existing.Digest.AsSpan().SequenceEqual(digest))
                {
                    return ProofOf(existing, alreadyLogged: true);
                }

                RecordEquivocation(submission, existing, digest);
            }

            ulong? latestEpoch;
            lock (_stateLock)
            {
                latestEpoch = _latestEpochs.TryGetValue(ns, out var latest) ? latest : null;
            }

            if (latestEpoch is { } previous && epoch <= previous)
            {
                throw new WitnessException(WitnessErrorKind.EpochNotIncreasing,
                    $"namespace '{ns}' epoch {epoch} is not above its latest logged epoch {previous}; epochs must strictly increase");
            }

            return Append(submission, digest);
        }
        finally
        {
            _submitGate.Release();
        }
    }

    /// <summary>The entry for (<paramref name="ns"/>, <paramref name="epoch"/>) with an inclusion proof in the latest checkpoint.</summary>
    /// <exception cref="WitnessException">Malformed, or nothing logged for it (<see cref="WitnessErrorKind.NotFound"/>).</exception>
    public async Task<LoggedBundleProof> GetBundleAsync(string ns, ulong epoch, CancellationToken cancellationToken)
    {
        Require(() => WitnessStatement.ValidateNamespace(ns));
        Require(() => WitnessStatement.ValidateEpoch(epoch));
        var entry = _store.FindEntry(ns, epoch)
            ?? throw new WitnessException(WitnessErrorKind.NotFound, $"nothing is logged for namespace '{ns}' epoch {epoch}");
        if (entry.LeafIndex >= TreeSize)
        {
            // Committed to the store a moment ago; the submission publishes it in memory next.
            await _submitGate.WaitAsync(cancellationToken);
            _submitGate.Release();
        }

        return ProofOf(entry, alreadyLogged: false);
    }

    /// <summary>The latest signed checkpoint, or null for an empty log.</summary>
    public string? LatestCheckpoint
    {
        get
        {
            lock (_stateLock)
            {
                return _latestCheckpoint;
            }
        }
    }

    /// <summary>The checkpoint signed at <paramref name="treeSize"/> (every size from 1 has one).</summary>
    /// <exception cref="WitnessException">Size 0 (<see cref="WitnessErrorKind.NotFound"/>) or beyond the log (<see cref="WitnessErrorKind.OutOfRange"/>).</exception>
    public string GetCheckpoint(ulong treeSize)
    {
        RequireSize(treeSize, "tree_size");
        return _store.ReadCheckpoint(treeSize)
            ?? throw new WitnessException(WitnessErrorKind.NotFound, $"no checkpoint is stored for tree size {treeSize}");
    }

    /// <summary>The leaf hash and RFC 9162 inclusion proof of leaf <paramref name="leafIndex"/> in the tree of <paramref name="treeSize"/> leaves.</summary>
    /// <exception cref="WitnessException">The index is not below the size, or the size is beyond the log.</exception>
    public (byte[] LeafHash, List<byte[]> Proof) GetInclusionProof(ulong leafIndex, ulong treeSize)
    {
        RequireSize(treeSize, "tree_size");
        if (leafIndex >= treeSize)
        {
            throw new WitnessException(WitnessErrorKind.InvalidArgument, $"leaf_index {leafIndex} must be below tree_size {treeSize}");
        }

        lock (_stateLock)
        {
            return (_tree.LeafHash(leafIndex), _tree.InclusionProof(leafIndex, treeSize));
        }
    }

    /// <summary>The RFC 9162 consistency proof between the trees of <paramref name="oldSize"/> and <paramref name="newSize"/> leaves.</summary>
    /// <exception cref="WitnessException">Not 0 &lt; old_size &lt;= new_size, or new_size beyond the log.</exception>
    public List<byte[]> GetConsistencyProof(ulong oldSize, ulong newSize)
    {
        if (oldSize == 0 || oldSize > newSize)
        {
            throw new WitnessException(WitnessErrorKind.InvalidArgument,
                $"old_size {oldSize} and new_size {newSize} must satisfy 0 < old_size <= new_size (RFC 9162 section 2.1.4)");
        }

        RequireSize(newSize, "new_size");
        lock (_stateLock)
        {
            return _tree.ConsistencyProof(oldSize, newSize);
        }
    }

    /// <summary>Committed entries from leaf <paramref name="start"/>, at most <paramref name="count"/> (1..<see cref="MaxEntriesPerRead"/>).</summary>
    /// <exception cref="WitnessException">A count out of range, or a start beyond the log.</exception>
    public List<LoggedEntry> GetEntries(ulong start, int count)
    {
        if (count is < 1 or > MaxEntriesPerRead)
        {
            throw new WitnessException(WitnessErrorKind.InvalidArgument, $"count must be 1..{MaxEntriesPerRead}; it is {count}");
        }

        var size = TreeSize;
        if (start >= size)
        {
            throw new WitnessException(WitnessErrorKind.OutOfRange, $"start {start} is not below the log's size {size}");
        }

        return [.. _store.ReadEntries(start, count).Where(e => e.LeafIndex < size).Select(ToLoggedEntry)];
    }

    /// <summary>Recorded equivocations after id <paramref name="afterId"/>, of <paramref name="ns"/> or every namespace.</summary>
    /// <exception cref="WitnessException">A malformed namespace or a limit out of range.</exception>
    public List<EquivocationRecord> ListEquivocations(string? ns, long afterId, int limit)
    {
        if (ns is not null)
        {
            Require(() => WitnessStatement.ValidateNamespace(ns));
        }

        if (limit is < 1 or > MaxEquivocationsPerRead || afterId < 0)
        {
            throw new WitnessException(WitnessErrorKind.InvalidArgument, $"limit must be 1..{MaxEquivocationsPerRead} (it is {limit}) and after_id not negative");
        }

        return [.. _store.ReadEquivocations(ns, afterId, limit).Select(e => new EquivocationRecord(
            e.Id, e.Namespace, e.Epoch, e.LoggedDigest, e.AttemptedDigest, DateTimeOffset.FromUnixTimeMilliseconds(e.ObservedAtUnixMs),
            e.OperatorSignatureAlgorithm, e.OperatorSignature))];
    }

    /// <summary>
    /// Replays the whole committed log from the store with <see cref="LogAuditor"/>, as an
    /// outside auditor would: every entry, every checkpoint against the recomputed tree and its
    /// predecessor.
    /// </summary>
    /// <exception cref="TransparencyException">The log does not verify.</exception>
    public LogAuditReport Audit()
    {
        var size = TreeSize;
        var auditor = new LogAuditor(Origin, NoteKey);
        ulong nextCheckpoint = 1;
        for (ulong start = 0; start < size;)
        {
            var entries = _store.ReadEntries(start, 256).Where(e => e.LeafIndex < size).ToList();
            if (entries.Count == 0)
            {
                throw new TransparencyException($"the store has no entry {start} below the log's size {size}");
            }

            foreach (var entry in entries)
            {
                auditor.AddEntry(new LogEntry(entry.LeafIndex, entry.Statement, entry.Signature));
            }

            start += (ulong)entries.Count;
            foreach (var note in _store.ReadCheckpoints(nextCheckpoint, (int)(start - nextCheckpoint + 1)))
            {
                auditor.AddCheckpoint(note);
                nextCheckpoint++;
            }
        }

        return auditor.Complete();
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _submitGate.Wait();
        _store.Dispose();
        _submitGate.Dispose();
    }

    private LoggedBundleProof Append(BundleSubmission submission, byte[] digest)
    {
        var statement = new WitnessStatement(SignatureAlgorithm.Ed25519, submission.Namespace, (ulong)_time.GetUtcNow().ToUnixTimeMilliseconds(), submission.Epoch, digest);
        var statementBytes = statement.Encode();
        var signature = _signer.Sign(statementBytes);
        var leafHash = MerkleHash.Leaf(statementBytes);
        ulong leafIndex;
        byte[] root;
        lock (_stateLock)
        {
            leafIndex = _tree.Size;
            _tree.Append(leafHash);
            root = _tree.RootHash(leafIndex + 1);
        }

        var entry = new StoredEntry(leafIndex, submission.Namespace, submission.Epoch, digest, statementBytes, SignatureAlgorithm.Ed25519,
            signature, leafHash, submission.Bundle, submission.OperatorAlgorithm, submission.OperatorSignature);
        string note;
        try
        {
            note = new Checkpoint(Origin, leafIndex + 1, root).Sign(NoteKey, m => _signer.Sign(m));
            _store.Append(entry, leafIndex + 1, root, note);
        }
        catch
        {
            lock (_stateLock)
            {
                _tree.RemoveLast();
            }

            throw;
        }

        List<byte[]> proof;
        lock (_stateLock)
        {
            _committedSize = leafIndex + 1;
            _latestCheckpoint = note;
            _latestEpochs[submission.Namespace] = submission.Epoch;
            proof = _tree.InclusionProof(leafIndex, leafIndex + 1);
        }

        var digestHex = Convert.ToHexStringLower(digest);
        Log.BundleLogged(_logger, submission.Namespace, submission.Epoch, digestHex, leafIndex);
        return new LoggedBundleProof(ToLoggedEntry(entry), note, leafIndex + 1, proof, AlreadyLogged: false);
    }

    private void RecordEquivocation(BundleSubmission submission, StoredEntry existing, byte[] digest)
    {
        _store.RecordEquivocation(submission.Namespace, submission.Epoch, existing.Digest, digest, _time.GetUtcNow().ToUnixTimeMilliseconds(),
            submission.OperatorAlgorithm, submission.OperatorSignature);
        var logged = Convert.ToHexStringLower(existing.Digest);
        var attempted = Convert.ToHexStringLower(digest);
        Log.EquivocationRefused(_logger, submission.Namespace, submission.Epoch, logged, attempted);
        throw new WitnessException(WitnessErrorKind.Equivocation,
            $"namespace '{submission.Namespace}' epoch {submission.Epoch} is already logged with digest {logged}; refused a second digest {attempted} " +
            "and recorded the attempt as an equivocation");
    }

    private LoggedBundleProof ProofOf(StoredEntry entry, bool alreadyLogged)
    {
        lock (_stateLock)
        {
            var size = _committedSize;
            return new LoggedBundleProof(ToLoggedEntry(entry), _latestCheckpoint!, size, _tree.InclusionProof(entry.LeafIndex, size), alreadyLogged);
        }
    }

    private void RequireSize(ulong treeSize, string field)
    {
        if (treeSize == 0)
        {
            throw new WitnessException(WitnessErrorKind.InvalidArgument, $"{field} must be at least 1");
        }

        var size = TreeSize;
        if (treeSize > size)
        {
            throw new WitnessException(WitnessErrorKind.OutOfRange, $"{field} {treeSize} is beyond the log's size {size}");
        }
    }

    private static LoggedEntry ToLoggedEntry(StoredEntry entry) =>
        new(entry.LeafIndex, entry.Statement, WitnessStatement.Decode(entry.Statement), entry.SignatureAlgorithm, entry.Signature, entry.Bundle);

    private static void CheckIdentity(WitnessStore store, string path, string key, string value, string what)
    {
        var stored = store.ReadMeta(key);
        if (stored is null)
        {
            store.WriteMeta(key, value);
        }
        else if (stored != value)
        {
            throw new InvalidDataException(
                $"the log in '{path}' was created with {what} '{stored}', not '{value}'; a log keeps its {what} for life");
        }
    }

    private static void Require(Action validate)
    {
        try
        {
            validate();
        }
        catch (TransparencyException e)
        {
            throw new WitnessException(WitnessErrorKind.InvalidArgument, e.Message);
        }
    }

    /// <summary>Log messages of the witness log; event ids 7000-7003.</summary>
    private static partial class Log
    {
        [LoggerMessage(EventId = 7000, EventName = "WitnessLogOpened", Level = LogLevel.Information,
            Message = "Witness log '{Origin}' open with {TreeSize} entries; verifier key {VerifierKey}")]
        public static partial void LogOpened(ILogger logger, string origin, ulong treeSize, string verifierKey);

        [LoggerMessage(EventId = 7001, EventName = "WitnessBundleLogged", Level = LogLevel.Information,
            Message = "Logged {Namespace} epoch {Epoch} (digest {Digest}) as entry {LeafIndex}")]
        public static partial void BundleLogged(ILogger logger, string @namespace, ulong epoch, string digest, ulong leafIndex);

        [LoggerMessage(EventId = 7002, EventName = "WitnessEquivocationRefused", Level = LogLevel.Warning,
            Message = "Refused equivocation: {Namespace} epoch {Epoch} is logged with digest {LoggedDigest}; the operator submitted {AttemptedDigest}")]
        public static partial void EquivocationRefused(ILogger logger, string @namespace, ulong epoch, string loggedDigest, string attemptedDigest);

        [LoggerMessage(EventId = 7003, EventName = "WitnessSubmissionUnauthenticated", Level = LogLevel.Warning,
            Message = "Refused a submission for {Namespace} epoch {Epoch}: no operator key of the namespace verifies its signature")]
        public static partial void SubmissionUnauthenticated(ILogger logger, string @namespace, ulong epoch);
    }
}
