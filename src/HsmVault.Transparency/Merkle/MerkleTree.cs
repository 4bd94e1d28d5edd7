namespace HsmVault.Transparency.Merkle;

/// <summary>
/// An append-only RFC 9162 Merkle tree of leaf hashes that answers roots, inclusion proofs and
/// consistency proofs for its current size or any earlier one in O(log n) hashes.
/// </summary>
/// <remarks>
/// It keeps the hash of every complete ("perfect") subtree: level h holds the roots of the
/// aligned subtrees of 2^h leaves. RFC 9162's recursion (section 2.1.1) only ever splits a range
/// at the largest power of two below its size, so every left part it meets is such a perfect,
/// aligned subtree, and a perfect subtree never changes as the tree grows: historic roots and
/// proofs need no history. Not thread-safe: the owner serializes access.
/// </remarks>
public sealed class MerkleTree
{
    private readonly List<List<byte[]>> _levels = [[]];

    /// <summary>Number of leaves.</summary>
    public ulong Size => (ulong)_levels[0].Count;

    /// <summary>Appends a leaf by its hash (<see cref="MerkleHash.Leaf"/> of the entry).</summary>
    public void Append(ReadOnlySpan<byte> leafHash)
    {
        if (leafHash.Length != MerkleHash.Size)
        {
            throw new ArgumentException($"a leaf hash has {MerkleHash.Size} bytes", nameof(leafHash));
        }

        _levels[0].Add(leafHash.ToArray());
        for (var level = 0; _levels[level].Count % 2 == 0; level++)
        {
            if (level + 1 == _levels.Count)
            {
                _levels.Add([]);
            }

            var nodes = _levels[level];
            _levels[level + 1].Add(MerkleHash.Node(nodes[^2], nodes[^1]));
        }
    }

    /// <summary>Removes the last leaf (undoing an <see cref="Append"/> whose entry was not committed).</summary>
    public void RemoveLast()
    {
        if (Size == 0)
        {
            throw new InvalidOperationException("the tree is empty");
        }

        // Append added one node at each level whose count it made even, and one above it; undo
        // exactly those.
        for (var level = 0; level < _levels.Count; level++)
        {
            var nodes = _levels[level];
            var wasEvenAfterAppend = nodes.Count % 2 == 0;
            nodes.RemoveAt(nodes.Count - 1);
            if (!wasEvenAfterAppend)
            {
                break;
            }
        }
    }

    /// <summary>The hash of leaf <paramref name="index"/>.</summary>
    public byte[] LeafHash(ulong index)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Size);
        return _levels[0][checked((int)index)];
    }

    /// <summary>MTH of the first <paramref name="treeSize"/> leaves (RFC 9162 section 2.1.1).</summary>
    public byte[] RootHash(ulong treeSize)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(treeSize, Size);
        return treeSize == 0 ? MerkleHash.EmptyRoot() : SubtreeHash(0, treeSize);
    }

    /// <summary>The audit path PATH(m, D[n]) of leaf <paramref name="leafIndex"/> in the tree of <paramref name="treeSize"/> leaves (RFC 9162 section 2.1.3.1), leaf end first.</summary>
    public List<byte[]> InclusionProof(ulong leafIndex, ulong treeSize)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(treeSize, Size);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(leafIndex, treeSize);
        var proof = new List<byte[]>();
        Path(leafIndex, 0, treeSize, proof);
        return proof;
    }

    /// <summary>
    /// The consistency proof PROOF(m, D[n]) between the trees of <paramref name="firstSize"/>
    /// and <paramref name="secondSize"/> leaves (RFC 9162 section 2.1.4.1), for 0 &lt; m &lt;= n.
    /// </summary>
    public List<byte[]> ConsistencyProof(ulong firstSize, ulong secondSize)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(secondSize, Size);
        ArgumentOutOfRangeException.ThrowIfZero(firstSize);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(firstSize, secondSize);
        var proof = new List<byte[]>();
        SubProof(firstSize, 0, secondSize, complete: true, proof);
        return proof;
    }

    /// <summary>PATH(m, D[start:end]), m relative to start.</summary>
    private void Path(ulong m, ulong start, ulong end, List<byte[]> proof)
    {
        var n = end - start;
        if (n == 1)
        {
            return;
        }

        var k = MerkleHash.SplitPoint(n);
        if (m < k)
        {
            Path(m, start, start + k, proof);
            proof.Add(SubtreeHash(start + k, end));
        }
        else
        {
            Path(m - k, start + k, end, proof);
            proof.Add(SubtreeHash(start, start + k));
        }
    }

    /// <summary>SUBPROOF(m, D[start:end], b), m relative to start.</summary>
    private void SubProof(ulong m, ulong start, ulong end, bool complete, List<byte[]> proof)
    {
        var n = end - start;
        if (m == n)
        {
            if (!complete)
            {
                proof.Add(SubtreeHash(start, end));
            }

            return;
        }

        var k = MerkleHash.SplitPoint(n);
        if (m <= k)
        {
            SubProof(m, start, start + k, complete, proof);
            proof.Add(SubtreeHash(start + k, end));
        }
        else
        {
            SubProof(m - k, start + k, end, complete: false, proof);
            proof.Add(SubtreeHash(start, start + k));
        }
    }

    /// <summary>MTH(D[start:end]) for a range RFC 9162's recursion produces (start aligned to the range's split).</summary>
    private byte[] SubtreeHash(ulong start, ulong end)
    {
        var n = end - start;
        if ((n & (n - 1)) == 0 && start % n == 0)
        {
            var level = System.Numerics.BitOperations.TrailingZeroCount(n);
            return _levels[level][checked((int)(start >> level))];
        }

        var k = MerkleHash.SplitPoint(n);
        return MerkleHash.Node(SubtreeHash(start, start + k), SubtreeHash(start + k, end));
    }
}
