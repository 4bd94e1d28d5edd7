namespace HsmVault.Hsm.Internal;

/// <summary>CKA_EC_POINT handling: tokens return the point wrapped in a DER OCTET STRING.</summary>
internal static class EcPoint
{
    /// <summary>
    /// Strips the DER OCTET STRING around a CKA_EC_POINT (<c>04 41 04||X||Y</c> for P-256,
    /// <c>04 20 ||A</c> for Ed25519) when present; a raw point is returned as it is.
    /// </summary>
    public static byte[] Unwrap(byte[] value, int expectedLength)
    {
        if (value.Length == expectedLength + 2 && value[0] == 0x04 && value[1] == expectedLength)
        {
            return value[2..];
        }

        if (value.Length == expectedLength)
        {
            return value;
        }

        throw new TokenConfigurationException(
            $"CKA_EC_POINT has {value.Length} bytes; expected {expectedLength} or a DER OCTET STRING of {expectedLength}");
    }

    /// <summary>Wraps a raw point in a DER OCTET STRING (short form; points here are under 128 bytes).</summary>
    public static byte[] Wrap(ReadOnlySpan<byte> point)
    {
        var der = new byte[point.Length + 2];
        der[0] = 0x04;
        der[1] = checked((byte)point.Length);
        point.CopyTo(der.AsSpan(2));
        return der;
    }
}
