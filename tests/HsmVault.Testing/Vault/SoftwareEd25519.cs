using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace HsmVault.Testing.Vault;

/// <summary>
/// An Ed25519 key in software (libsodium), standing in for a member's token-held identity key where thousands of
/// commands are signed and verified (the simulator): libsodium verifies without importing the key first.
/// </summary>
internal sealed partial class SoftwareEd25519 : IDisposable
{
    private readonly byte[] _secretKey = new byte[64];

    static SoftwareEd25519()
    {
        if (SodiumInit() < 0)
        {
            throw new InvalidOperationException("sodium_init failed");
        }
    }

    public SoftwareEd25519()
    {
        var seed = RandomNumberGenerator.GetBytes(32);
        if (CryptoSignSeedKeypair(PublicKey, _secretKey, seed) != 0)
        {
            throw new CryptographicException("crypto_sign_seed_keypair failed");
        }

        CryptographicOperations.ZeroMemory(seed);
    }

    public byte[] PublicKey { get; } = new byte[32];

    public byte[] Sign(byte[] message)
    {
        var signature = new byte[64];
        if (CryptoSignDetached(signature, out _, message, (ulong)message.Length, _secretKey) != 0)
        {
            throw new CryptographicException("crypto_sign_detached failed");
        }

        return signature;
    }

    public void Dispose() => CryptographicOperations.ZeroMemory(_secretKey);

    [LibraryImport("libsodium", EntryPoint = "sodium_init")]
    private static partial int SodiumInit();

    [LibraryImport("libsodium", EntryPoint = "crypto_sign_seed_keypair")]
    private static partial int CryptoSignSeedKeypair(Span<byte> publicKey, Span<byte> secretKey, ReadOnlySpan<byte> seed);

    [LibraryImport("libsodium", EntryPoint = "crypto_sign_detached")]
    private static partial int CryptoSignDetached(Span<byte> signature, out ulong signatureLength, ReadOnlySpan<byte> message, ulong messageLength, ReadOnlySpan<byte> secretKey);
}
