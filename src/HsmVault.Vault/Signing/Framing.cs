using System.Buffers.Binary;
using System.Text;

namespace HsmVault.Vault.Signing;

/// <summary>
/// The one framing of bytes that are signed or bound as associated data: a domain string,
/// then each part with a 2-byte big-endian length. Distinct domains keep a signature made for
/// one purpose from ever being valid for another, and the lengths keep two different lists of
/// parts from framing to the same bytes.
/// </summary>
public static class Framing
{
    /// <summary>Frames <paramref name="parts"/> under <paramref name="domain"/>.</summary>
    public static byte[] Frame(string domain, params ReadOnlySpan<byte[]> parts)
    {
        var domainBytes = Encoding.ASCII.GetBytes(domain);
        var length = 2 + domainBytes.Length;
        foreach (var part in parts)
        {
            length += 2 + part.Length;
        }

        var result = new byte[length];
        var offset = Write(result, 0, domainBytes);
        foreach (var part in parts)
        {
            offset = Write(result, offset, part);
        }

        return result;
    }

    private static int Write(byte[] destination, int offset, byte[] part)
    {
        BinaryPrimitives.WriteUInt16BigEndian(destination.AsSpan(offset), checked((ushort)part.Length));
        part.CopyTo(destination, offset + 2);
        return offset + 2 + part.Length;
    }
}
