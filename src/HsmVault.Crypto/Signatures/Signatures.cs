using System.Security.Cryptography;
using HsmVault.Crypto.Internal;

namespace HsmVault.Crypto.Signatures;

/// <summary>Signature algorithms of the keys HsmVault signs with: the fleet signing key, member identity keys, witness keys.</summary>
/// <remarks>The numeric values are part of every signed format that names its algorithm: never renumber them.</remarks>
public enum SignatureAlgorithm
{
    /// <summary>Ed25519 (RFC 8032; CKM_EDDSA in a token); signatures are 64 bytes.</summary>
    Ed25519 = 1,

    /// <summary>ECDSA P-256 over SHA-256; signatures are raw r || s, 64 bytes.</summary>
    EcdsaP256Sha256 = 2,
}

/// <summary>The public half of a signing key.</summary>
/// <param name="Algorithm">How signatures are made.</param>
/// <param name="PublicKey">Ed25519: 32 bytes. P-256: uncompressed point, 65 bytes (0x04 || X || Y).</param>
public sealed record SigningKeyDescription(SignatureAlgorithm Algorithm, byte[] PublicKey)
{
    /// <summary>Length of every signature HsmVault makes, whatever the algorithm.</summary>
    public const int SignatureBytes = 64;

    /// <summary>
    /// A short, stable name of this key for logs and reports: the first 16 hex digits of
    /// SHA-256(algorithm byte || public key).
    /// </summary>
    public string Fingerprint()
    {
        Span<byte> digest = stackalloc byte[32];
        SHA256.HashData([(byte)Algorithm, .. PublicKey], digest);
        return Convert.ToHexStringLower(digest[..8]);
    }

    /// <summary>Whether <paramref name="signature"/> is this key's signature of <paramref name="message"/>.</summary>
    /// <remarks>Pure software (libsodium, .NET's ECDSA): verification never needs a token, so it can run inside Raft apply.</remarks>
    public bool Verifies(ReadOnlySpan<byte> message, ReadOnlySpan<byte> signature)
    {
        if (signature.Length != SignatureBytes)
        {
            return false;
        }

        switch (Algorithm)
        {
            case SignatureAlgorithm.Ed25519:
                return PublicKey.Length == 32
                    && LibSodium.SignVerifyDetached(signature, message, (ulong)message.Length, PublicKey) == 0;
            case SignatureAlgorithm.EcdsaP256Sha256:
                if (PublicKey.Length != 65 || PublicKey[0] != 0x04)
                {
                    return false;
                }

                try
                {
                    using var ecdsa = ECDsa.Create(new ECParameters
                    {
                        Curve = ECCurve.NamedCurves.nistP256,
                        Q = new ECPoint { X = PublicKey[1..33], Y = PublicKey[33..] },
                    });
                    return ecdsa.VerifyData(message, signature, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
                }
                catch (CryptographicException)
                {
                    // A point that is not on the curve.
                    return false;
                }

            default:
                return false;
        }
    }

    /// <summary>Value equality over the key bytes (records compare arrays by reference).</summary>
    public bool Equals(SigningKeyDescription? other) =>
        other is not null && Algorithm == other.Algorithm && PublicKey.AsSpan().SequenceEqual(other.PublicKey);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Algorithm, PublicKey.Length > 0 ? PublicKey[^1] : 0);
}

/// <summary>
/// What the fleet signing key signs to vouch for a RegistrationResponse (vault.proto,
/// StartRegistrationResponse.registration_response_signature). OPAQUE registration needs an
/// authenticated server: whoever answers StartRegistration with an OPRF key of its own could later
/// guess passwords offline against the record. A client that verified the fleet's validation bundle
/// checks this signature under the bundle's fleet signing key before it sends its record.
/// </summary>
/// <remarks>
/// Encoding: <c>"HsmVault registration response v1" || 0x00</c> (34 bytes), <c>u8 n</c> and the n
/// ASCII bytes of the fleet id, the 32-byte RegistrationRequest, the 64-byte RegistrationResponse.
/// </remarks>
public static class RegistrationResponseSignature
{
    /// <summary>Domain-separation prefix.</summary>
    public static ReadOnlySpan<byte> Prefix => "HsmVault registration response v1\0"u8;

    /// <summary>The bytes the fleet signing key signs for <paramref name="registrationResponse"/>, the answer to <paramref name="registrationRequest"/>.</summary>
    public static byte[] SignedMessage(string fleetId, ReadOnlySpan<byte> registrationRequest, ReadOnlySpan<byte> registrationResponse)
    {
        ArgumentNullException.ThrowIfNull(fleetId);
        var id = System.Text.Encoding.ASCII.GetBytes(fleetId);
        if (id.Length > byte.MaxValue)
        {
            throw new ArgumentException("a fleet id has at most 255 characters", nameof(fleetId));
        }

        return [.. Prefix, (byte)id.Length, .. id, .. registrationRequest, .. registrationResponse];
    }
}
