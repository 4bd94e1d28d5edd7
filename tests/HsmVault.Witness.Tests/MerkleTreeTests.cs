using System.Text;
using HsmVault.Transparency;
using HsmVault.Transparency.Merkle;

namespace HsmVault.Witness.Tests;

/// <summary>
/// The tree's roots and proofs for every size 1..N against RFC 9162's definitions evaluated by
/// brute force (section 2.1.1 MTH, 2.1.3.1 PATH, 2.1.4.1 PROOF over the whole leaf list), and
/// every proof through the verifier, untouched and with each hash altered.
/// </summary>
public sealed class MerkleTreeTests
{
    private const int MaxSize = 40;

    [Fact]
    public void EveryRootAndProof_UpToMaxSize_MatchesTheRfcDefinitions_AndVerifies()
    {
        var tree = new MerkleTree();
        var leaves = new List<byte[]>();
        for (var n = 1; n <= MaxSize; n++)
        {
            leaves.Add(MerkleHash.Leaf(Encoding.ASCII.GetBytes($"entry {n - 1}")));
            tree.Append(leaves[^1]);
            Assert.Equal((ulong)n, tree.Size);
            CheckSize(tree, leaves, n);
        }

        // Historic sizes: the tree of MaxSize still answers for every smaller size.
        for (var size = 1; size <= MaxSize; size++)
        {
            CheckSize(tree, leaves, size);
        }
    }

    private static void CheckSize(MerkleTree tree, List<byte[]> leaves, int size)
    {
        var root = Mth(leaves, 0, size);
        Assert.Equal(root, tree.RootHash((ulong)size));
        for (var m = 0; m < size; m++)
        {
            var path = tree.InclusionProof((ulong)m, (ulong)size);
            Assert.Equal(Path(m, leaves, 0, size), path);
            MerkleVerifier.VerifyInclusion((ulong)m, (ulong)size, leaves[m], path, root);
        }

        for (var m = 1; m <= size; m++)
        {
            var proof = tree.ConsistencyProof((ulong)m, (ulong)size);
            Assert.Equal(Proof(m, leaves, 0, size, complete: true), proof);
            MerkleVerifier.VerifyConsistency((ulong)m, (ulong)size, Mth(leaves, 0, m), root, proof);
        }
    }

    [Fact]
    public void AlteredProofs_AreRefused_ForEverySizeAndHash()
    {
        var tree = new MerkleTree();
        var leaves = new List<byte[]>();
        for (var n = 1; n <= 20; n++)
        {
            leaves.Add(MerkleHash.Leaf([(byte)n]));
            tree.Append(leaves[^1]);
        }

        var refused = 0;
        for (var size = 2; size <= 20; size++)
        {
            var root = tree.RootHash((ulong)size);
            for (var m = 0; m < size; m++)
            {
                var path = tree.InclusionProof((ulong)m, (ulong)size);
                for (var i = 0; i < path.Count; i++)
                {
                    var altered = path.Select(h => h.ToArray()).ToList();
                    altered[i][i % 32] ^= 0x01;
                    Assert.Throws<TransparencyException>(() => MerkleVerifier.VerifyInclusion((ulong)m, (ulong)size, leaves[m], altered, root));
                    refused++;
                }

                Assert.Throws<TransparencyException>(() => MerkleVerifier.VerifyInclusion((ulong)m, (ulong)size, leaves[m], path[..^1], root));
                Assert.Throws<TransparencyException>(() => MerkleVerifier.VerifyInclusion((ulong)m, (ulong)size, leaves[m], [.. path, root], root));
            }

            for (var m = 1; m < size; m++)
            {
                var proof = tree.ConsistencyProof((ulong)m, (ulong)size);
                var first = tree.RootHash((ulong)m);
                for (var i = 0; i < proof.Count; i++)
                {
                    var altered = proof.Select(h => h.ToArray()).ToList();
                    altered[i][31] ^= 0x80;
                    Assert.Throws<TransparencyException>(() => MerkleVerifier.VerifyConsistency((ulong)m, (ulong)size, first, root, altered));
                    refused++;
                }

                // A first tree that is not a prefix of the second.
                var forged = MerkleHash.Node(first, first);
                Assert.Throws<TransparencyException>(() => MerkleVerifier.VerifyConsistency((ulong)m, (ulong)size, forged, root, proof));
            }
        }

        Assert.True(refused > 500, $"only {refused} altered proofs tried");
    }

    [Fact]
    public void RemoveLast_UndoesAppend_AtEverySize()
    {
        var tree = new MerkleTree();
        var roots = new List<byte[]> { tree.RootHash(0) };
        for (var n = 1; n <= 33; n++)
        {
            tree.Append(MerkleHash.Leaf([(byte)n]));
            roots.Add(tree.RootHash(tree.Size));
        }

        for (var n = 33; n >= 1; n--)
        {
            tree.RemoveLast();
            Assert.Equal(roots[n - 1], tree.RootHash(tree.Size));
            tree.Append(MerkleHash.Leaf([(byte)n]));
            Assert.Equal(roots[n], tree.RootHash(tree.Size));
            tree.RemoveLast();
        }

        Assert.Equal(MerkleHash.EmptyRoot(), tree.RootHash(0));
        Assert.Equal(Convert.FromHexString("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"), MerkleHash.EmptyRoot());
    }

    private static int Split(int n)
    {
        var k = 1;
        while (k * 2 < n)
        {
            k *= 2;
        }

        return k;
    }

    // RFC 9162 section 2.1.1, by definition.
    private static byte[] Mth(List<byte[]> leaves, int start, int end) =>
        end - start == 1 ? leaves[start] : MerkleHash.Node(Mth(leaves, start, start + Split(end - start)), Mth(leaves, start + Split(end - start), end));

    // RFC 9162 section 2.1.3.1, by definition.
    private static List<byte[]> Path(int m, List<byte[]> leaves, int start, int end)
    {
        var n = end - start;
        if (n == 1)
        {
            return [];
        }

        var k = Split(n);
        return m < k
            ? [.. Path(m, leaves, start, start + k), Mth(leaves, start + k, end)]
            : [.. Path(m - k, leaves, start + k, end), Mth(leaves, start, start + k)];
    }

    // RFC 9162 section 2.1.4.1, by definition.
    private static List<byte[]> Proof(int m, List<byte[]> leaves, int start, int end, bool complete)
    {
        var n = end - start;
        if (m == n)
        {
            return complete ? [] : [Mth(leaves, start, end)];
        }

        var k = Split(n);
        return m <= k
            ? [.. Proof(m, leaves, start, start + k, complete), Mth(leaves, start + k, end)]
            : [.. Proof(m - k, leaves, start + k, end, complete: false), Mth(leaves, start, start + k)];
    }
}
