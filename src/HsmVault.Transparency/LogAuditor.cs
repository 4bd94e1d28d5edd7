using HsmVault.Crypto.Signatures;
using HsmVault.Transparency.Merkle;
using HsmVault.Transparency.Notes;

namespace HsmVault.Transparency;

/// <summary>One entry of a witness's log as an auditor receives it.</summary>
/// <param name="LeafIndex">Position in the log, from 0.</param>
/// <param name="Statement">The encoded <see cref="WitnessStatement"/>: the leaf data.</param>
/// <param name="Signature">The witness's signature of <paramref name="Statement"/>.</param>
public sealed record LogEntry(ulong LeafIndex, byte[] Statement, byte[] Signature);

/// <summary>What a replay of a whole log established.</summary>
/// <param name="TreeSize">Entries replayed.</param>
/// <param name="RootHash">Root of the replayed tree.</param>
/// <param name="CheckpointsVerified">Signed checkpoints checked against the replayed tree and against their predecessor.</param>
/// <param name="LatestEpochs">Each namespace's highest epoch.</param>
public sealed record LogAuditReport(ulong TreeSize, byte[] RootHash, int CheckpointsVerified, IReadOnlyDictionary<string, ulong> LatestEpochs);

/// <summary>
/// Replays a witness's whole log as an auditor would: every entry in order (its statement
/// decodes, the witness signed it, no namespace has two digests for an epoch and epochs only
/// go up), the tree recomputed from the entries, and every signed checkpoint verified (the
/// witness signed it, its root is the recomputed root at its size, and it is consistent with
/// the checkpoint before it by an RFC 9162 consistency proof). Feed entries and checkpoints in
/// increasing order, interleaved as they arrive (a checkpoint may come once its size is
/// reached), then call <see cref="Complete"/>. Any failure throws <see cref="TransparencyException"/>
/// naming the entry or checkpoint.
/// </summary>
public sealed class LogAuditor
{
    private readonly NoteVerifierKey _witnessKey;
    private readonly string _origin;
    private readonly MerkleTree _tree = new();
    private readonly Dictionary<string, ulong> _latestEpochs = new(StringComparer.Ordinal);
    private Checkpoint? _previous;
    private int _checkpoints;

    /// <summary>An auditor of the log <paramref name="origin"/> whose witness key is <paramref name="witnessKey"/>.</summary>
    public LogAuditor(string origin, NoteVerifierKey witnessKey)
    {
        ArgumentNullException.ThrowIfNull(witnessKey);
        Checkpoint.ValidateOrigin(origin);
        _origin = origin;
        _witnessKey = witnessKey;
    }

    /// <summary>Entries replayed so far.</summary>
    public ulong TreeSize => _tree.Size;

    /// <summary>Replays <paramref name="entries"/> and <paramref name="checkpointNotes"/> (both in increasing order) in one go.</summary>
    /// <exception cref="TransparencyException">The log does not verify.</exception>
    public static LogAuditReport Replay(string origin, NoteVerifierKey witnessKey, IEnumerable<LogEntry> entries, IEnumerable<string> checkpointNotes)
    {
        ArgumentNullException.ThrowIfNull(entries);
        ArgumentNullException.ThrowIfNull(checkpointNotes);
        var auditor = new LogAuditor(origin, witnessKey);
        using var notes = checkpointNotes.GetEnumerator();
        var pending = notes.MoveNext() ? notes.Current : null;
        foreach (var entry in entries)
        {
            auditor.AddEntry(entry);
            while (pending is not null && Checkpoint.ParseText(SignedNote.Open(pending, witnessKey)).TreeSize <= auditor.TreeSize)
            {
                auditor.AddCheckpoint(pending);
                pending = notes.MoveNext() ? notes.Current : null;
            }
        }

        if (pending is not null)
        {
            auditor.AddCheckpoint(pending);
        }

        return auditor.Complete();
    }

    /// <summary>Replays the next entry.</summary>
    /// <exception cref="TransparencyException">It is out of order, does not decode, is not signed by the witness, or breaks its namespace's history.</exception>
    public void AddEntry(LogEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        if (entry.LeafIndex != _tree.Size)
        {
            throw new TransparencyException($"entry {entry.LeafIndex} arrived where entry {_tree.Size} was expected: the log has a gap or a duplicate");
        }

        WitnessStatement statement;
        try
        {
            statement = WitnessStatement.Decode(entry.Statement);
        }
        catch (TransparencyException e)
        {
            throw new TransparencyException($"entry {entry.LeafIndex}: {e.Message}", e);
        }

        if (statement.Ciphersuite != SignatureAlgorithm.Ed25519 || !_witnessKey.SigningKey.Verifies(entry.Statement, entry.Signature))
        {
            throw new TransparencyException(
                $"entry {entry.LeafIndex} ({statement.Namespace} epoch {statement.Epoch}): the witness signature does not verify under key {_witnessKey.VerifierKey}");
        }

        if (_latestEpochs.TryGetValue(statement.Namespace, out var latest) && statement.Epoch <= latest)
        {
            throw new TransparencyException(
                $"entry {entry.LeafIndex}: namespace '{statement.Namespace}' epoch {statement.Epoch} follows epoch {latest}; epochs must strictly increase, one digest each");
        }

        _latestEpochs[statement.Namespace] = statement.Epoch;
        _tree.Append(MerkleHash.Leaf(entry.Statement));
    }

    /// <summary>Checks the next signed checkpoint against the entries replayed so far and the checkpoint before it.</summary>
    /// <exception cref="TransparencyException">It is not the witness's, is out of order, or does not match the replayed tree.</exception>
    public void AddCheckpoint(string note)
    {
        var checkpoint = Checkpoint.Open(note, _witnessKey, _origin);
        if (checkpoint.TreeSize > _tree.Size)
        {
            throw new TransparencyException($"checkpoint of size {checkpoint.TreeSize} is beyond the {_tree.Size} entries the log holds");
        }

        if (checkpoint.TreeSize == 0)
        {
            throw new TransparencyException("checkpoint of size 0: this log signs checkpoints only of trees with entries");
        }

        var root = _tree.RootHash(checkpoint.TreeSize);
        if (!root.AsSpan().SequenceEqual(checkpoint.RootHash))
        {
            throw new TransparencyException(
                $"checkpoint of size {checkpoint.TreeSize} has root {Convert.ToHexStringLower(checkpoint.RootHash)}, but the entries give {Convert.ToHexStringLower(root)}");
        }

        if (_previous is not null)
        {
            if (checkpoint.TreeSize <= _previous.TreeSize)
            {
                throw new TransparencyException($"checkpoint of size {checkpoint.TreeSize} follows one of size {_previous.TreeSize}; checkpoints must grow");
            }

            MerkleVerifier.VerifyConsistency(
                _previous.TreeSize, checkpoint.TreeSize, _previous.RootHash, checkpoint.RootHash,
                _tree.ConsistencyProof(_previous.TreeSize, checkpoint.TreeSize));
        }

        _previous = checkpoint;
        _checkpoints++;
    }

    /// <summary>Ends the replay: the last checkpoint must cover every entry.</summary>
    /// <exception cref="TransparencyException">No checkpoint covers the last entries.</exception>
    public LogAuditReport Complete()
    {
        if (_tree.Size > 0 && (_previous is null || _previous.TreeSize != _tree.Size))
        {
            throw new TransparencyException(
                $"the log holds {_tree.Size} entries but its last checkpoint covers {_previous?.TreeSize ?? 0}: entries without a signed checkpoint");
        }

        return new LogAuditReport(_tree.Size, _tree.RootHash(_tree.Size), _checkpoints, new Dictionary<string, ulong>(_latestEpochs, StringComparer.Ordinal));
    }
}
