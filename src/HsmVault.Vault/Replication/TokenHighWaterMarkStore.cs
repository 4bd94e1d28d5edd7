using System.Buffers.Binary;
using System.Text;
using HsmVault.Consensus;
using HsmVault.Hsm;

namespace HsmVault.Vault.Replication;

/// <summary>
/// Keeps Raft's rollback guard in the token, out of reach of anyone who restores the data
/// directory from an old copy: the term, vote and last acknowledged position this member has
/// vouched for. On a hardware token the mark lives in the HSM; on SoftHSM2 in its token folder,
/// which must therefore be kept apart from the data folder.
/// </summary>
/// <remarks>
/// A token write costs milliseconds (SoftHSM2 creates a new object attribute by attribute, then destroys the old
/// one; a hardware token's non-volatile memory is slow and wears). So: RaftNode asks for a write only when term,
/// vote or vouched position changed, at most once per batch (a batch grows with load, so one write vouches for
/// every entry in it); the store keeps the last mark it read or wrote and never rewrites an equal one (e.g. the
/// mark it started from); and the token remembers where the object is (<c>IVaultToken.WriteDataObject</c>), so a
/// write is one object created and one destroyed, without searching the token and reading every copy back.
/// <para>
/// It does not vouch ahead in windows (write a mark N entries beyond the batch so most batches need none), though
/// that would amortize writes further: the guarantee would hold — the mark would still be at or above every
/// position vouched for — but the mark would be above what the log durably holds, so every plain crash would look
/// like a rollback, and a fleet of one, or members that crashed within one window, could then never elect a leader
/// again (no log in the fleet reaches the bound, and only the dead term's leader could have written it). The
/// simulator shows both halves (<c>Simulation_MarkVouchedAheadInWindows_StaysSafeButStallsAfterCrashes</c>); see
/// <c>RaftNode.RestoreFromHighWaterMark</c>. For the same reason the write is not overlapped with the log's
/// fsync: a mark durable before the entries it covers is a window of one batch. The store is used by the Raft loop
/// alone.
/// </para>
/// </remarks>
public sealed class TokenHighWaterMarkStore(IVaultToken token) : IHighWaterMarkStore
{
    private HighWaterMark? _last;

    /// <summary>Name of the token data object holding the mark.</summary>
    public const string ObjectName = "raft-high-water-mark";

    private const byte FormatVersion = 1;

    /// <inheritdoc/>
    public HighWaterMark? Read()
    {
        var bytes = token.ReadDataObject(ObjectName);
        if (bytes is null)
        {
            return null;
        }

        if (bytes.Length < 1 + 24 + 2 || bytes[0] != FormatVersion)
        {
            throw new InvalidDataException($"the token's '{ObjectName}' object has an unknown layout");
        }

        var span = bytes.AsSpan(1);
        var term = BinaryPrimitives.ReadUInt64BigEndian(span);
        var index = BinaryPrimitives.ReadUInt64BigEndian(span[8..]);
        var indexTerm = BinaryPrimitives.ReadUInt64BigEndian(span[16..]);
        var voteLength = BinaryPrimitives.ReadUInt16BigEndian(span[24..]);
        var vote = voteLength == 0 ? null : Encoding.UTF8.GetString(span.Slice(26, voteLength));
        _last = new HighWaterMark(term, vote, index, indexTerm);
        return _last;
    }

    /// <inheritdoc/>
    public void Write(HighWaterMark mark)
    {
        ArgumentNullException.ThrowIfNull(mark);
        if (mark == _last)
        {
            return;
        }

        var vote = mark.Vote is null ? [] : Encoding.UTF8.GetBytes(mark.Vote);
        var bytes = new byte[1 + 24 + 2 + vote.Length];
        bytes[0] = FormatVersion;
        var span = bytes.AsSpan(1);
        BinaryPrimitives.WriteUInt64BigEndian(span, mark.Term);
        BinaryPrimitives.WriteUInt64BigEndian(span[8..], mark.Index);
        BinaryPrimitives.WriteUInt64BigEndian(span[16..], mark.IndexTerm);
        BinaryPrimitives.WriteUInt16BigEndian(span[24..], (ushort)vote.Length);
        vote.CopyTo(span[26..]);
        token.WriteDataObject(ObjectName, bytes);
        _last = mark;
    }
}
