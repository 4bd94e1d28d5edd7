using System.Security.Cryptography;

namespace HsmVault.Crypto.Internal;

/// <summary>
/// Where the protocol's randomness comes from. Production uses <see cref="SystemOpaqueRandom"/>; tests
/// (this assembly's and HsmVault.Vault.Tests, through InternalsVisibleTo) supply the RFC 9807
/// appendix C vectors' blinds, nonces, keyshare seeds and fake-record values in protocol order.
/// </summary>
internal interface IOpaqueRandom
{
    /// <summary>Fills <paramref name="destination"/> with uniformly random bytes (nonces, seeds, masking keys).</summary>
    void GetBytes(Span<byte> destination);

    /// <summary>Writes a uniformly random non-zero ristretto255 scalar (OPRF blinds, fake client keys).</summary>
    void GetScalar(Span<byte> destination);
}

/// <summary>The operating system's CSPRNG for bytes and libsodium's for scalars.</summary>
internal sealed class SystemOpaqueRandom : IOpaqueRandom
{
    internal static SystemOpaqueRandom Instance { get; } = new();

    private SystemOpaqueRandom()
    {
    }

    public void GetBytes(Span<byte> destination) => RandomNumberGenerator.Fill(destination);

    public void GetScalar(Span<byte> destination) => Ristretto255.RandomScalar(destination);
}
