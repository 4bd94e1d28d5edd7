using System.Buffers.Binary;
using System.Text;

namespace HsmVault.Hsm;

/// <summary>
/// What every blob the token seals is bound to: the associated data of each kind of sealed
/// blob, defined here once. A blob opens only under the same bytes, so these layouts are part
/// of every token and state already written and never change; a new kind of blob gets its own
/// domain string here.
/// </summary>
/// <remarks>
/// The <c>user</c> arguments are the user's one encoding, <c>UserIdentity.Encoded</c>:
/// both parts length-prefixed, so no two users frame to the same bytes.
/// </remarks>
public static class SealBinding
{
    private static ReadOnlySpan<byte> RecordDomain => "hsmvault/record/v1"u8;
    private static ReadOnlySpan<byte> TicketDomain => "hsmvault/registration-ticket/v1"u8;

    /// <summary>
    /// The fleet's AKE private key, sealed into a token data object:
    /// <c>"hsmvault/ake-private-key/v1"</c>.
    /// </summary>
    public static ReadOnlySpan<byte> AkePrivateKey => "hsmvault/ake-private-key/v1"u8;

    /// <summary>
    /// Version <paramref name="version"/> of a user's record:
    /// <c>"hsmvault/record/v1" || u16 len || fleet id || user || i64 version</c> (big-endian), so a
    /// blob moved to another fleet or user, or put back over a newer version, fails to open.
    /// </summary>
    public static byte[] Record(string fleetId, ReadOnlySpan<byte> user, long version)
    {
        var fleet = Encoding.UTF8.GetBytes(fleetId);
        var ad = new byte[RecordDomain.Length + 2 + fleet.Length + user.Length + 8];
        var rest = Append(ad, RecordDomain);
        BinaryPrimitives.WriteUInt16BigEndian(rest, checked((ushort)fleet.Length));
        rest = Append(rest[2..], fleet);
        rest = Append(rest, user);
        BinaryPrimitives.WriteInt64BigEndian(rest, version);
        return ad;
    }

    /// <summary>
    /// A registration ticket issued to a user:
    /// <c>"hsmvault/registration-ticket/v1" || fleet id || 0x00 || user</c>. (The fleet id is
    /// ended by a zero byte rather than length-prefixed: fleet ids hold no zero byte, and the
    /// tickets in flight when this was written must keep opening.)
    /// </summary>
    public static byte[] RegistrationTicket(string fleetId, ReadOnlySpan<byte> user)
    {
        var fleet = Encoding.UTF8.GetBytes(fleetId);
        var ad = new byte[TicketDomain.Length + fleet.Length + 1 + user.Length];
        var rest = Append(ad, TicketDomain);
        rest = Append(rest, fleet);
        rest[0] = 0;
        Append(rest[1..], user);
        return ad;
    }

    private static Span<byte> Append(Span<byte> destination, ReadOnlySpan<byte> part)
    {
        part.CopyTo(destination);
        return destination[part.Length..];
    }
}
