using System.Security.Cryptography;
using HsmVault.Crypto.Internal;

namespace HsmVault.Crypto.Opaque;

/// <summary>
/// The server's long-term ristretto255 AKE key pair (RFC 9807 section 6.4.1). The private key lives in a
/// pinned buffer, so the GC never leaves copies behind, and is wiped on <see cref="Dispose"/>.
/// </summary>
public sealed class ServerKeyPair : IDisposable
{
    private readonly byte[] _privateKey;
    private readonly byte[] _publicKey;
    private bool _disposed;

    private ServerKeyPair(byte[] pinnedPrivateKey)
    {
        _privateKey = pinnedPrivateKey;
        _publicKey = new byte[OpaqueSizes.PublicKey];
        Ristretto255.ScalarMultBase(_privateKey, _publicKey);
    }

    /// <summary>Generates a fresh key pair from a uniformly random non-zero scalar (RFC 9807 GenerateAuthKeyPair).</summary>
    public static ServerKeyPair Generate()
    {
        var privateKey = GC.AllocateArray<byte>(OpaqueSizes.PrivateKey, pinned: true);
        Ristretto255.RandomScalar(privateKey);
        return new ServerKeyPair(privateKey);
    }

    /// <summary>Loads a key pair from its private key and derives the public key.</summary>
    /// <param name="privateKey">A canonical, non-zero ristretto255 scalar (32 bytes, little-endian).</param>
    /// <exception cref="ArgumentException">The private key has the wrong length, is not reduced, or is zero.</exception>
    public static ServerKeyPair FromPrivateKey(ReadOnlySpan<byte> privateKey)
    {
        if (!Ristretto255.IsCanonicalNonZeroScalar(privateKey))
        {
            throw new ArgumentException("The private key is not a canonical non-zero ristretto255 scalar.", nameof(privateKey));
        }

        var copy = GC.AllocateArray<byte>(OpaqueSizes.PrivateKey, pinned: true);
        privateKey.CopyTo(copy);
        return new ServerKeyPair(copy);
    }

    /// <summary>The public key: a 32-byte ristretto255 element.</summary>
    public ReadOnlySpan<byte> PublicKey
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _publicKey;
        }
    }

    /// <summary>Copies the private key out; used only to seal it into the token at provisioning.</summary>
    /// <param name="destination">At least <see cref="OpaqueSizes.PrivateKey"/> bytes; the caller wipes it.</param>
    public void CopyPrivateKey(Span<byte> destination)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _privateKey.CopyTo(destination);
    }

    /// <summary>The private key for the 3DH computations in this assembly.</summary>
    internal ReadOnlySpan<byte> PrivateKey
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _privateKey;
        }
    }

    /// <summary>Wipes the private key.</summary>
    public void Dispose()
    {
        _disposed = true;
        CryptographicOperations.ZeroMemory(_privateKey);
    }
}
