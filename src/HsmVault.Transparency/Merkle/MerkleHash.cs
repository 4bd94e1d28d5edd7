using System.Security.Cryptography;

namespace HsmVault.Transparency.Merkle;

/// <summary>The Merkle Tree Hash of RFC 9162 section 2.1.1 with SHA-256.</summary>
public static class MerkleHash
{
    /// <summary>Length of every hash: SHA-256.</summary>
    public const int Size = 32;

    /// <summary>MTH({}) = SHA-256() (RFC 9162 section 2.1.1): the root of the empty tree.</summary>
    public static byte[] EmptyRoot() => SHA256.HashData(ReadOnlySpan<byte>.Empty);

    /// <summary>The hash of a leaf: SHA-256(0x00 || data) (RFC 9162 section 2.1.1).</summary>
    public static byte[] Leaf(ReadOnlySpan<byte> data)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData([0x00]);
        hash.AppendData(data);
        return hash.GetHashAndReset();
    }

    /// <summary>The hash of an interior node: SHA-256(0x01 || left || right) (RFC 9162 section 2.1.1).</summary>
    public static byte[] Node(ReadOnlySpan<byte> left, ReadOnlySpan<byte> right)
    {
        Span<byte> input = stackalloc byte[1 + (2 * Size)];
        if (left.Length != Size || right.Length != Size)
        {
            throw new ArgumentException($"node children must be {Size}-byte hashes");
        }

        input[0] = 0x01;
        left.CopyTo(input[1..]);
        right.CopyTo(input[(1 + Size)..]);
        return SHA256.HashData(input);
    }

    /// <summary>The largest power of two smaller than <paramref name="n"/> (n &gt; 1): the split point k of RFC 9162 section 2.1.1.</summary>
    internal static ulong SplitPoint(ulong n)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 2UL);
        return 1UL << (63 - System.Numerics.BitOperations.LeadingZeroCount(n - 1));
    }
}
