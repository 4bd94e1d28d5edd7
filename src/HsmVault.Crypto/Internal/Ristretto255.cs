using System.Security.Cryptography;
using HsmVault.Crypto.Opaque;

namespace HsmVault.Crypto.Internal;

/// <summary>
/// The ristretto255 prime-order group (RFC 9496) as RFC 9497 section 4.1 uses it: elements and
/// scalars are 32-byte canonical encodings, every operation is libsodium's.
/// </summary>
internal static class Ristretto255
{
    internal const int ElementSize = LibSodium.ElementBytes;
    internal const int ScalarSize = LibSodium.ScalarBytes;

    /// <summary>
    /// RFC 9497 section 4.1 DeserializeElement plus the identity check that RFC 9807 section 10.7
    /// requires of every element received from the peer.
    /// </summary>
    /// <remarks>
    /// libsodium's is_valid_point rejects non-canonical encodings but accepts the identity, whose
    /// only canonical encoding is 32 zero bytes; so the identity is rejected here explicitly.
    /// </remarks>
    internal static bool IsValidNonIdentityElement(ReadOnlySpan<byte> element) =>
        element.Length == ElementSize
        && LibSodium.IsValidPoint(element) == 1
        && element.IndexOfAnyExcept((byte)0) >= 0;

    /// <summary>Throws <see cref="OpaqueProtocolException"/> unless <paramref name="element"/> is a valid, non-identity element.</summary>
    internal static void ValidateElement(ReadOnlySpan<byte> element, string what)
    {
        if (!IsValidNonIdentityElement(element))
        {
            throw new OpaqueProtocolException($"The {what} is not a valid ristretto255 element.");
        }
    }

    /// <summary>
    /// True when <paramref name="scalar"/> is a canonical (reduced modulo the group order) non-zero scalar.
    /// </summary>
    internal static bool IsCanonicalNonZeroScalar(ReadOnlySpan<byte> scalar)
    {
        if (scalar.Length != ScalarSize || scalar.IndexOfAnyExcept((byte)0) < 0)
        {
            return false;
        }

        // Reducing a canonical scalar leaves it unchanged; anything at or above the order changes.
        Span<byte> wide = stackalloc byte[LibSodium.WideBytes];
        Span<byte> reduced = stackalloc byte[ScalarSize];
        try
        {
            wide.Clear();
            scalar.CopyTo(wide);
            LibSodium.ScalarReduce(reduced, wide);
            return CryptographicOperations.FixedTimeEquals(reduced, scalar);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(wide);
            CryptographicOperations.ZeroMemory(reduced);
        }
    }

    /// <summary>
    /// <paramref name="result"/> = <paramref name="scalar"/> * <paramref name="element"/>.
    /// libsodium refuses an invalid element and a result that is the identity; both surface as
    /// <see cref="OpaqueProtocolException"/> because they can only come from a malicious or broken peer.
    /// </summary>
    internal static void ScalarMult(ReadOnlySpan<byte> scalar, ReadOnlySpan<byte> element, Span<byte> result)
    {
        CheckSizes(scalar, result);
        if (element.Length != ElementSize || LibSodium.ScalarMult(result, scalar, element) != 0)
        {
            result.Clear();
            throw new OpaqueProtocolException("A scalar multiplication produced the identity element or used an invalid element.");
        }
    }

    /// <summary><paramref name="result"/> = <paramref name="scalar"/> * G (RFC 9497 ScalarMultGen).</summary>
    internal static void ScalarMultBase(ReadOnlySpan<byte> scalar, Span<byte> result)
    {
        CheckSizes(scalar, result);
        if (LibSodium.ScalarMultBase(result, scalar) != 0)
        {
            result.Clear();
            throw new OpaqueProtocolException("The scalar is zero.");
        }
    }

    /// <summary>
    /// Maps 64 uniform bytes to an element (RFC 9496 section 4.3.4, the element-derivation step of
    /// hash_to_ristretto255 in RFC 9380 appendix B).
    /// </summary>
    internal static void FromUniformBytes(ReadOnlySpan<byte> uniform, Span<byte> result)
    {
        if (uniform.Length != LibSodium.WideBytes || result.Length != ElementSize)
        {
            throw new ArgumentException("Wrong buffer size for ristretto255 from_hash.");
        }

        if (LibSodium.FromHash(result, uniform) != 0)
        {
            throw new CryptographicException("crypto_core_ristretto255_from_hash failed.");
        }
    }

    /// <summary>Reduces 64 bytes, read little-endian, modulo the group order (RFC 9497 section 4.1 HashToScalar).</summary>
    internal static void ReduceWide(ReadOnlySpan<byte> wide, Span<byte> result)
    {
        if (wide.Length != LibSodium.WideBytes || result.Length != ScalarSize)
        {
            throw new ArgumentException("Wrong buffer size for ristretto255 scalar_reduce.");
        }

        LibSodium.ScalarReduce(result, wide);
    }

    /// <summary>Modular inverse of a non-zero scalar (RFC 9497 ScalarInverse).</summary>
    internal static void Invert(ReadOnlySpan<byte> scalar, Span<byte> result)
    {
        CheckSizes(scalar, result);
        if (LibSodium.ScalarInvert(result, scalar) != 0)
        {
            throw new CryptographicException("Cannot invert the zero scalar.");
        }
    }

    /// <summary>A uniformly random non-zero scalar (RFC 9497 RandomScalar).</summary>
    internal static void RandomScalar(Span<byte> result)
    {
        if (result.Length != ScalarSize)
        {
            throw new ArgumentException("Wrong buffer size for a ristretto255 scalar.");
        }

        LibSodium.ScalarRandom(result);
    }

    private static void CheckSizes(ReadOnlySpan<byte> scalar, Span<byte> result)
    {
        if (scalar.Length != ScalarSize || result.Length != ElementSize)
        {
            throw new ArgumentException("Wrong buffer size for a ristretto255 scalar multiplication.");
        }
    }
}
