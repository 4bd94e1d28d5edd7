using System.Security.Cryptography;

namespace HsmVault.Crypto.Internal;

/// <summary>
/// RFC 9807 section 2.1 KDF and MAC for the ristretto255-SHA512 suite: HKDF-SHA512 and HMAC-SHA512,
/// plus the section 6.4.2 Expand-Label / Derive-Secret helpers.
/// </summary>
internal static class Kdf
{
    /// <summary>Nh, Nx and Nm: SHA-512 output size.</summary>
    internal const int HashSize = 64;

    /// <summary>Extract("", ikm): HKDF-Extract with an empty salt (RFC 5869 treats it as HashLen zeros).</summary>
    internal static void Extract(ReadOnlySpan<byte> ikm, Span<byte> prk) =>
        HKDF.Extract(HashAlgorithmName.SHA512, ikm, ReadOnlySpan<byte>.Empty, prk);

    /// <summary>Expand(prk, info, output.Length): HKDF-Expand with SHA-512.</summary>
    internal static void Expand(ReadOnlySpan<byte> prk, ReadOnlySpan<byte> info, Span<byte> output) =>
        HKDF.Expand(HashAlgorithmName.SHA512, prk, output, info);

    /// <summary>Expand(prk, info1 || info2, length): the envelope and OPRF-key derivations concatenate two labels.</summary>
    internal static void Expand(ReadOnlySpan<byte> prk, ReadOnlySpan<byte> info1, ReadOnlySpan<byte> info2, Span<byte> output)
    {
        var info = new byte[info1.Length + info2.Length];
        info1.CopyTo(info);
        info2.CopyTo(info.AsSpan(info1.Length));
        Expand(prk, info, output);
    }

    /// <summary>
    /// RFC 9807 section 6.4.2 Expand-Label: Expand(Secret, CustomLabel, Length) where CustomLabel is
    /// I2OSP(Length, 2) || I2OSP(len("OPAQUE-" || Label), 1) || "OPAQUE-" || Label || I2OSP(len(Context), 1) || Context.
    /// </summary>
    internal static void ExpandLabel(ReadOnlySpan<byte> secret, ReadOnlySpan<byte> label, ReadOnlySpan<byte> context, Span<byte> output)
    {
        ReadOnlySpan<byte> prefix = "OPAQUE-"u8;
        var fullLabelLength = prefix.Length + label.Length;
        if (output.Length > ushort.MaxValue || fullLabelLength > byte.MaxValue || context.Length > byte.MaxValue)
        {
            throw new ArgumentException("Expand-Label parameters out of range.");
        }

        var customLabel = new byte[2 + 1 + fullLabelLength + 1 + context.Length];
        customLabel[0] = (byte)(output.Length >> 8);
        customLabel[1] = (byte)output.Length;
        customLabel[2] = (byte)fullLabelLength;
        prefix.CopyTo(customLabel.AsSpan(3));
        label.CopyTo(customLabel.AsSpan(3 + prefix.Length));
        customLabel[3 + fullLabelLength] = (byte)context.Length;
        context.CopyTo(customLabel.AsSpan(4 + fullLabelLength));
        Expand(secret, customLabel, output);
    }

    /// <summary>RFC 9807 section 6.4.2 Derive-Secret(Secret, Label, Transcript-Hash) = Expand-Label(Secret, Label, Transcript-Hash, Nx).</summary>
    internal static void DeriveSecret(ReadOnlySpan<byte> secret, ReadOnlySpan<byte> label, ReadOnlySpan<byte> transcriptHash, Span<byte> output) =>
        ExpandLabel(secret, label, transcriptHash, output[..HashSize]);

    /// <summary>MAC(key, message) = HMAC-SHA512.</summary>
    internal static void Mac(ReadOnlySpan<byte> key, ReadOnlySpan<byte> message, Span<byte> output) =>
        HMACSHA512.HashData(key, message, output);
}
