using System.Buffers.Binary;
using System.Security.Cryptography;
using HsmVault.Crypto.Opaque;

namespace HsmVault.Crypto.Internal;

/// <summary>
/// RFC 9497 OPRF, mode 0x00 (modeOPRF), suite ristretto255-SHA512, on top of <see cref="Ristretto255"/>.
/// </summary>
internal static class Oprf
{
    /// <summary>Nok, the size of an OPRF private key.</summary>
    internal const int PrivateKeySize = Ristretto255.ScalarSize;

    /// <summary>Nh for SHA-512: the size of an OPRF output.</summary>
    internal const int OutputSize = 64;

    /// <summary>RFC 9497 section 3.1: contextString = "OPRFV1-" || I2OSP(mode, 1) || "-" || identifier.</summary>
    private static ReadOnlySpan<byte> ContextString => "OPRFV1-\0-ristretto255-SHA512"u8;

    private static readonly byte[] HashToGroupDst = [.. "HashToGroup-"u8, .. ContextString];
    private static readonly byte[] DeriveKeyPairDst = [.. "DeriveKeyPair"u8, .. ContextString];

    /// <summary>
    /// RFC 9497 section 3.2.1 DeriveKeyPair: hash seed || I2OSP(len(info), 2) || info || I2OSP(counter, 1)
    /// to a scalar until it is non-zero, then the public key is skS * G.
    /// </summary>
    internal static void DeriveKeyPair(ReadOnlySpan<byte> seed, ReadOnlySpan<byte> info, Span<byte> privateKey, Span<byte> publicKey)
    {
        DerivePrivateKey(seed, info, privateKey);
        Ristretto255.ScalarMultBase(privateKey, publicKey);
    }

    /// <summary>
    /// The private half of <see cref="DeriveKeyPair"/>. Mode 0x00 (OPRF, not VOPRF) never shows the client the
    /// server's public key, so a server evaluating a per-user key (RFC 9807 section 5.3) needs only skS; the
    /// base-point multiplication it skips is about 7% of a KE2.
    /// </summary>
    internal static void DerivePrivateKey(ReadOnlySpan<byte> seed, ReadOnlySpan<byte> info, Span<byte> privateKey)
    {
        if (info.Length > ushort.MaxValue)
        {
            throw new ArgumentException("The info string is too long.", nameof(info));
        }

        var deriveInput = new byte[seed.Length + 2 + info.Length + 1];
        try
        {
            seed.CopyTo(deriveInput);
            BinaryPrimitives.WriteUInt16BigEndian(deriveInput.AsSpan(seed.Length), (ushort)info.Length);
            info.CopyTo(deriveInput.AsSpan(seed.Length + 2));
            for (var counter = 0; counter <= byte.MaxValue; counter++)
            {
                deriveInput[^1] = (byte)counter;
                HashToScalar(deriveInput, DeriveKeyPairDst, privateKey);
                if (privateKey.IndexOfAnyExcept((byte)0) >= 0)
                {
                    return;
                }
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(deriveInput);
        }

        // Unreachable in practice: 256 zero scalars in a row have probability about 2^-64000.
        throw new CryptographicException("DeriveKeyPair failed.");
    }

    /// <summary>
    /// RFC 9497 section 3.3.1 Blind, with the blind supplied by the caller (randomness is the caller's
    /// choice so the RFC vectors can fix it): blindedElement = blind * HashToGroup(input).
    /// </summary>
    internal static void Blind(ReadOnlySpan<byte> input, ReadOnlySpan<byte> blind, Span<byte> blindedElement)
    {
        Span<byte> inputElement = stackalloc byte[Ristretto255.ElementSize];
        HashToGroup(input, inputElement);
        if (inputElement.IndexOfAnyExcept((byte)0) < 0)
        {
            // RFC 9497 section 3.3.1: InvalidInputError when the input hashes to the identity.
            throw new OpaqueProtocolException("The password hashes to the identity element.");
        }

        Ristretto255.ScalarMult(blind, inputElement, blindedElement);
    }

    /// <summary>RFC 9497 section 3.3.1 BlindEvaluate: evaluatedElement = skS * blindedElement.</summary>
    internal static void BlindEvaluate(ReadOnlySpan<byte> privateKey, ReadOnlySpan<byte> blindedElement, Span<byte> evaluatedElement) =>
        Ristretto255.ScalarMult(privateKey, blindedElement, evaluatedElement);

    /// <summary>
    /// RFC 9497 section 3.3.1 Finalize: unblind, then
    /// Hash(I2OSP(len(input), 2) || input || I2OSP(len(unblindedElement), 2) || unblindedElement || "Finalize").
    /// </summary>
    internal static void Finalize(ReadOnlySpan<byte> input, ReadOnlySpan<byte> blind, ReadOnlySpan<byte> evaluatedElement, Span<byte> output)
    {
        if (input.Length > ushort.MaxValue)
        {
            throw new ArgumentException("The OPRF input is too long.", nameof(input));
        }

        Span<byte> inverse = stackalloc byte[Ristretto255.ScalarSize];
        Span<byte> unblinded = stackalloc byte[Ristretto255.ElementSize];
        Span<byte> length = stackalloc byte[2];
        try
        {
            Ristretto255.Invert(blind, inverse);
            Ristretto255.ScalarMult(inverse, evaluatedElement, unblinded);

            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA512);
            BinaryPrimitives.WriteUInt16BigEndian(length, (ushort)input.Length);
            hash.AppendData(length);
            hash.AppendData(input);
            BinaryPrimitives.WriteUInt16BigEndian(length, (ushort)unblinded.Length);
            hash.AppendData(length);
            hash.AppendData(unblinded);
            hash.AppendData("Finalize"u8);
            hash.GetHashAndReset(output);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(inverse);
            CryptographicOperations.ZeroMemory(unblinded);
        }
    }

    /// <summary>
    /// RFC 9497 section 4.1 HashToGroup: hash_to_ristretto255 (RFC 9380 appendix B) with
    /// expand_message_xmd(SHA-512) and DST "HashToGroup-" || contextString.
    /// </summary>
    internal static void HashToGroup(ReadOnlySpan<byte> input, Span<byte> element)
    {
        Span<byte> uniform = stackalloc byte[LibSodium.WideBytes];
        try
        {
            ExpandMessageXmd(input, HashToGroupDst, uniform);
            Ristretto255.FromUniformBytes(uniform, element);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(uniform);
        }
    }

    /// <summary>
    /// RFC 9497 section 4.1 HashToScalar: expand_message_xmd(SHA-512) to 64 bytes, read little-endian,
    /// reduced modulo the group order.
    /// </summary>
    internal static void HashToScalar(ReadOnlySpan<byte> input, ReadOnlySpan<byte> dst, Span<byte> scalar)
    {
        Span<byte> uniform = stackalloc byte[LibSodium.WideBytes];
        try
        {
            ExpandMessageXmd(input, dst, uniform);
            Ristretto255.ReduceWide(uniform, scalar);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(uniform);
        }
    }

    /// <summary>RFC 9380 section 5.3.1 expand_message_xmd with SHA-512 (b_in_bytes = 64, s_in_bytes = 128).</summary>
    internal static void ExpandMessageXmd(ReadOnlySpan<byte> message, ReadOnlySpan<byte> dst, Span<byte> output)
    {
        const int HashSize = 64;
        const int BlockSize = 128;
        var ell = (output.Length + HashSize - 1) / HashSize;
        if (ell > 255 || output.Length > ushort.MaxValue || dst.Length > 255 || output.IsEmpty)
        {
            throw new ArgumentException("expand_message_xmd parameters out of range.");
        }

        Span<byte> b0 = stackalloc byte[HashSize];
        Span<byte> bi = stackalloc byte[HashSize];
        Span<byte> lengthAndCounter = stackalloc byte[3];
        Span<byte> dstLength = [(byte)dst.Length];
        try
        {
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA512);

            // b_0 = H(Z_pad || msg || I2OSP(len_in_bytes, 2) || I2OSP(0, 1) || DST_prime)
            Span<byte> zeroPad = stackalloc byte[BlockSize];
            zeroPad.Clear();
            hash.AppendData(zeroPad);
            hash.AppendData(message);
            BinaryPrimitives.WriteUInt16BigEndian(lengthAndCounter, (ushort)output.Length);
            lengthAndCounter[2] = 0;
            hash.AppendData(lengthAndCounter);
            hash.AppendData(dst);
            hash.AppendData(dstLength);
            hash.GetHashAndReset(b0);

            // b_1 = H(b_0 || I2OSP(1, 1) || DST_prime); b_i = H(strxor(b_0, b_(i-1)) || I2OSP(i, 1) || DST_prime)
            b0.CopyTo(bi);
            for (var i = 1; i <= ell; i++)
            {
                if (i > 1)
                {
                    for (var j = 0; j < HashSize; j++)
                    {
                        bi[j] ^= b0[j];
                    }
                }

                hash.AppendData(bi);
                hash.AppendData([(byte)i]);
                hash.AppendData(dst);
                hash.AppendData(dstLength);
                hash.GetHashAndReset(bi);

                var offset = (i - 1) * HashSize;
                bi[..Math.Min(HashSize, output.Length - offset)].CopyTo(output[offset..]);
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(b0);
            CryptographicOperations.ZeroMemory(bi);
        }
    }
}
