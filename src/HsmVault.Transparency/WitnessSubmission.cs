using System.Buffers.Binary;
using System.Text;

namespace HsmVault.Transparency;

/// <summary>
/// What an operator signs to submit a bundle to a witness: the namespace, the epoch and the
/// bundle's digest, so that a witness (or anyone it shows the signature to) can hold the
/// operator to having published that digest for that epoch.
/// </summary>
/// <remarks>
/// Encoding, integers big-endian:
/// <code>
///   31 bytes  "HsmVault witness submission v1" || 0x00   domain separation
///    1 byte   n = namespace length, 1..128
///    n bytes  namespace, ASCII
///    8 bytes  epoch
///   32 bytes  digest: SHA-256 of the bundle
/// </code>
/// </remarks>
public static class WitnessSubmission
{
    /// <summary>Domain-separation prefix of the encoding.</summary>
    public static ReadOnlySpan<byte> Prefix => "HsmVault witness submission v1\0"u8;

    /// <summary>The bytes an operator signs to submit <paramref name="digest"/> as <paramref name="ns"/>'s epoch <paramref name="epoch"/>.</summary>
    /// <exception cref="TransparencyException">A field is out of range.</exception>
    public static byte[] SignedMessage(string ns, ulong epoch, ReadOnlySpan<byte> digest)
    {
        WitnessStatement.ValidateNamespace(ns);
        WitnessStatement.ValidateEpoch(epoch);
        WitnessStatement.ValidateDigest(digest);
        var bytes = new byte[Prefix.Length + 1 + ns.Length + 8 + WitnessStatement.DigestLength];
        var span = bytes.AsSpan();
        Prefix.CopyTo(span);
        var at = Prefix.Length;
        span[at++] = (byte)ns.Length;
        at += Encoding.ASCII.GetBytes(ns, span[at..]);
        BinaryPrimitives.WriteUInt64BigEndian(span[at..], epoch);
        at += 8;
        digest.CopyTo(span[at..]);
        return bytes;
    }
}
