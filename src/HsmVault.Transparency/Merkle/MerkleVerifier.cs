using System.Globalization;
using System.Security.Cryptography;

namespace HsmVault.Transparency.Merkle;

/// <summary>
/// Verification of RFC 9162 inclusion and consistency proofs, exactly as sections 2.1.3.2 and
/// 2.1.4.2 describe them. Each method throws <see cref="TransparencyException"/> naming what
/// failed; it returns only when the proof verifies.
/// </summary>
public static class MerkleVerifier
{
    /// <summary>
    /// Checks that <paramref name="leafHash"/> is leaf <paramref name="leafIndex"/> of the tree
    /// of <paramref name="treeSize"/> leaves whose root is <paramref name="rootHash"/>
    /// (RFC 9162 section 2.1.3.2).
    /// </summary>
    /// <exception cref="TransparencyException">The proof does not verify; the message says why.</exception>
    public static void VerifyInclusion(ulong leafIndex, ulong treeSize, ReadOnlySpan<byte> leafHash, IReadOnlyList<byte[]> proof, ReadOnlySpan<byte> rootHash)
    {
        ArgumentNullException.ThrowIfNull(proof);
        if (leafIndex >= treeSize)
        {
            throw Fail($"leaf index {leafIndex} is not below tree size {treeSize}");
        }

        RequireHash(leafHash, "leaf hash");
        RequireHash(rootHash, "root hash");
        RequireHashes(proof, "inclusion proof");

        // Step 2: fn = leaf_index, sn = tree_size - 1, r = leaf_hash.
        var fn = leafIndex;
        var sn = treeSize - 1;
        var r = leafHash.ToArray();
        foreach (var p in proof)
        {
            if (sn == 0)
            {
                throw Fail($"inclusion proof for leaf {leafIndex} of {treeSize} has {proof.Count} hashes, more than the tree's height");
            }

            if ((fn & 1) == 1 || fn == sn)
            {
                r = MerkleHash.Node(p, r);
                if ((fn & 1) == 0)
                {
                    while ((fn & 1) == 0 && fn != 0)
                    {
                        fn >>= 1;
                        sn >>= 1;
                    }
                }
            }
            else
            {
                r = MerkleHash.Node(r, p);
            }

            fn >>= 1;
            sn >>= 1;
        }

        if (sn != 0)
        {
            throw Fail($"inclusion proof for leaf {leafIndex} of {treeSize} has {proof.Count} hashes, fewer than the path needs");
        }

        if (!CryptographicOperations.FixedTimeEquals(r, rootHash))
        {
            throw Fail($"inclusion proof for leaf {leafIndex} of {treeSize} leads to root {Convert.ToHexStringLower(r)}, not {Convert.ToHexStringLower(rootHash)}");
        }
    }

    /// <summary>
    /// Checks that the tree of <paramref name="secondSize"/> leaves with root
    /// <paramref name="secondRoot"/> extends the tree of <paramref name="firstSize"/> leaves with
    /// root <paramref name="firstRoot"/> (RFC 9162 section 2.1.4.2). Equal sizes need an empty
    /// proof and equal roots. The section defines proofs for 0 &lt; first: a consistency proof
    /// from the empty tree proves nothing and is refused.
    /// </summary>
    /// <exception cref="TransparencyException">The proof does not verify; the message says why.</exception>
    public static void VerifyConsistency(ulong firstSize, ulong secondSize, ReadOnlySpan<byte> firstRoot, ReadOnlySpan<byte> secondRoot, IReadOnlyList<byte[]> proof)
    {
        ArgumentNullException.ThrowIfNull(proof);
        if (firstSize == 0)
        {
            throw Fail($"a consistency proof from the empty tree (size 0 to {secondSize}) proves nothing; RFC 9162 section 2.1.4.2 needs 0 < first");
        }

        if (firstSize > secondSize)
        {
            throw Fail($"tree size {secondSize} is smaller than the earlier size {firstSize}: the log went back in time");
        }

        if (firstSize == secondSize)
        {
            if (proof.Count != 0)
            {
                throw Fail($"consistency proof between equal sizes {firstSize} must be empty; it has {proof.Count} hashes");
            }

            if (!firstRoot.SequenceEqual(secondRoot))
            {
                throw Fail($"two different roots for tree size {firstSize}: {Convert.ToHexStringLower(firstRoot)} and {Convert.ToHexStringLower(secondRoot)}");
            }

            return;
        }

        RequireHash(firstRoot, "first root hash");
        RequireHash(secondRoot, "second root hash");
        RequireHashes(proof, "consistency proof");

        // Step 1: an empty path fails.
        if (proof.Count == 0)
        {
            throw Fail($"consistency proof from size {firstSize} to {secondSize} is empty");
        }

        // Step 2: if first is an exact power of two, prepend first_hash.
        var path = new List<byte[]>(proof.Count + 1);
        if ((firstSize & (firstSize - 1)) == 0)
        {
            path.Add(firstRoot.ToArray());
        }

        path.AddRange(proof);

        // Steps 3-5.
        var fn = firstSize - 1;
        var sn = secondSize - 1;
        while ((fn & 1) == 1)
        {
            fn >>= 1;
            sn >>= 1;
        }

        var fr = path[0];
        var sr = path[0];
        foreach (var c in path.Skip(1))
        {
            if (sn == 0)
            {
                throw Fail($"consistency proof from size {firstSize} to {secondSize} has more hashes than the trees need");
            }

            if ((fn & 1) == 1 || fn == sn)
            {
                fr = MerkleHash.Node(c, fr);
                sr = MerkleHash.Node(c, sr);
                if ((fn & 1) == 0)
                {
                    while ((fn & 1) == 0 && fn != 0)
                    {
                        fn >>= 1;
                        sn >>= 1;
                    }
                }
            }
            else
            {
                sr = MerkleHash.Node(sr, c);
            }

            fn >>= 1;
            sn >>= 1;
        }

        // Step 6.
        if (sn != 0)
        {
            throw Fail($"consistency proof from size {firstSize} to {secondSize} has fewer hashes than the trees need");
        }

        if (!CryptographicOperations.FixedTimeEquals(fr, firstRoot))
        {
            throw Fail($"consistency proof from size {firstSize} to {secondSize} does not lead to the first root {Convert.ToHexStringLower(firstRoot)}");
        }

        if (!CryptographicOperations.FixedTimeEquals(sr, secondRoot))
        {
            throw Fail($"consistency proof from size {firstSize} to {secondSize} does not lead to the second root {Convert.ToHexStringLower(secondRoot)}: the log is not append-only between them");
        }
    }

    private static void RequireHash(ReadOnlySpan<byte> hash, string what)
    {
        if (hash.Length != MerkleHash.Size)
        {
            throw Fail(string.Create(CultureInfo.InvariantCulture, $"{what} has {hash.Length} bytes; a SHA-256 hash has {MerkleHash.Size}"));
        }
    }

    private static void RequireHashes(IReadOnlyList<byte[]> hashes, string what)
    {
        for (var i = 0; i < hashes.Count; i++)
        {
            if (hashes[i] is not { Length: MerkleHash.Size })
            {
                throw Fail(string.Create(CultureInfo.InvariantCulture, $"{what} hash {i} has {hashes[i]?.Length ?? 0} bytes; a SHA-256 hash has {MerkleHash.Size}"));
            }
        }
    }

    private static TransparencyException Fail(string message) => new(message);
}
