using System.Buffers.Binary;
using System.Text;
using HsmVault.Crypto.Signatures;
using HsmVault.Vault.State;

namespace HsmVault.Vault.Signing;

/// <summary>
/// A member's vouching for its identity key: the fleet signing key (held by every member's
/// token, never outside one) signs (fleet, member, identity key). A member proves it is one of
/// the fleet's with this; its peer TLS certificate proves nothing at apply time.
/// </summary>
/// <param name="FleetId">The fleet.</param>
/// <param name="MemberId">The member the identity key belongs to.</param>
/// <param name="IdentityKey">The member's identity key, generated in its token.</param>
/// <param name="Signature">The fleet signing key's signature of <see cref="SignedBytes"/>.</param>
public sealed record MemberEndorsement(string FleetId, string MemberId, SigningKeyDescription IdentityKey, byte[] Signature)
{
    /// <summary>What the fleet signing key signs.</summary>
    public static byte[] SignedBytes(string fleetId, string memberId, SigningKeyDescription identityKey)
    {
        ArgumentNullException.ThrowIfNull(identityKey);
        return Framing.Frame("hsmvault/member-endorsement/v1",
            Encoding.UTF8.GetBytes(fleetId), Encoding.UTF8.GetBytes(memberId), [(byte)identityKey.Algorithm], identityKey.PublicKey);
    }
}

/// <summary>
/// A vault command as it travels in the replicated log: the command's bytes, signed by the
/// identity key of the member that decided it, with that member's endorsement. Every member
/// checks both at apply (<see cref="CommandVerifier"/>), so a command that did not come from a
/// fleet member's token is refused wherever it is applied, whoever put it in the log.
/// </summary>
/// <param name="Endorsement">Who decided it.</param>
/// <param name="Body">The command, as <see cref="VaultCommandCodec"/> encodes it.</param>
/// <param name="Signature">The identity key's signature of <see cref="SignedBytes"/>.</param>
public sealed record SignedCommand(MemberEndorsement Endorsement, byte[] Body, byte[] Signature)
{
    private const byte FormatVersion = 2;

    /// <summary>Upper bound of an encoded command, far above the largest registration.</summary>
    public const int MaxEncodedBytes = 16 * 1024;

    /// <summary>What the member's identity key signs: the fleet and the command's bytes.</summary>
    public static byte[] SignedBytes(string fleetId, ReadOnlySpan<byte> body) =>
        Framing.Frame("hsmvault/command/v1", Encoding.UTF8.GetBytes(fleetId), body.ToArray());

    /// <summary>The log entry.</summary>
    public byte[] Encode()
    {
        var fleet = Encoding.UTF8.GetBytes(Endorsement.FleetId);
        var member = Encoding.UTF8.GetBytes(Endorsement.MemberId);
        var key = Endorsement.IdentityKey.PublicKey;
        using var stream = new MemoryStream();
        stream.WriteByte(FormatVersion);
        WriteField(stream, fleet);
        WriteField(stream, member);
        stream.WriteByte((byte)Endorsement.IdentityKey.Algorithm);
        WriteField(stream, key);
        WriteField(stream, Endorsement.Signature);
        WriteField(stream, Body);
        WriteField(stream, Signature);
        return stream.ToArray();
    }

    /// <summary>Parses a log entry; null when it is not a signed command of this format (it is then refused, never applied).</summary>
    public static SignedCommand? TryDecode(ReadOnlySpan<byte> entry)
    {
        if (entry.Length is < 2 or > MaxEncodedBytes || entry[0] != FormatVersion)
        {
            return null;
        }

        var rest = entry[1..];
        if (!TryReadField(ref rest, out var fleet) || !TryReadField(ref rest, out var member) || rest.IsEmpty)
        {
            return null;
        }

        var algorithm = (SignatureAlgorithm)rest[0];
        rest = rest[1..];
        if (!TryReadField(ref rest, out var key) || !TryReadField(ref rest, out var endorsement)
            || !TryReadField(ref rest, out var body) || !TryReadField(ref rest, out var signature) || !rest.IsEmpty)
        {
            return null;
        }

        string fleetId, memberId;
        try
        {
            fleetId = StrictUtf8.GetString(fleet);
            memberId = StrictUtf8.GetString(member);
        }
        catch (DecoderFallbackException)
        {
            return null;
        }

        return new SignedCommand(new MemberEndorsement(fleetId, memberId, new SigningKeyDescription(algorithm, key), endorsement), body, signature);
    }

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private static void WriteField(Stream stream, ReadOnlySpan<byte> value)
    {
        Span<byte> length = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16BigEndian(length, checked((ushort)value.Length));
        stream.Write(length);
        stream.Write(value);
    }

    private static bool TryReadField(ref ReadOnlySpan<byte> rest, out byte[] value)
    {
        value = [];
        if (rest.Length < 2)
        {
            return false;
        }

        int length = BinaryPrimitives.ReadUInt16BigEndian(rest);
        if (rest.Length < 2 + length)
        {
            return false;
        }

        value = rest.Slice(2, length).ToArray();
        rest = rest[(2 + length)..];
        return true;
    }
}
