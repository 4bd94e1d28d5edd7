using System.Buffers.Binary;
using System.Security.Cryptography;

namespace HsmVault.Vault.State;

/// <summary>
/// A running digest of everything a member has applied: <c>d(i) = SHA-256(d(i-1) || i ||
/// SHA-256(entry i) || result i)</c>, with <c>d(0)</c> 32 zero bytes. Two members with the
/// same digest at an index applied the same entries with the same results up to it; a member
/// that applied an entry the fleet later rewrote (a rollback of other members' disks and
/// tokens, outside the fault model) has a different digest forever after, even though Raft
/// never hands it the rewritten entry again. Members publish theirs every
/// <see cref="VaultOptions.StateDigestInterval"/> entries (<see cref="StateDigestCommand"/>)
/// and compare at apply.
/// </summary>
public static class StateDigestChain
{
    /// <summary>The digest before any entry.</summary>
    public static byte[] Genesis() => new byte[32];

    /// <summary>The digest after applying <paramref name="entry"/> at <paramref name="index"/> with <paramref name="result"/>.</summary>
    public static byte[] Next(ReadOnlySpan<byte> previous, ulong index, ReadOnlySpan<byte> entry, ReadOnlySpan<byte> result)
    {
        Span<byte> input = stackalloc byte[32 + 8 + 32 + 2 + result.Length];
        previous.CopyTo(input);
        BinaryPrimitives.WriteUInt64BigEndian(input[32..], index);
        SHA256.HashData(entry, input[40..]);
        BinaryPrimitives.WriteUInt16BigEndian(input[72..], checked((ushort)result.Length));
        result.CopyTo(input[74..]);
        return SHA256.HashData(input);
    }
}
