using System.Runtime.InteropServices;

namespace HsmVault.Hsm.Tests;

/// <summary>libsodium's Ed25519 verification, an independent check of the token's CKM_EDDSA signatures.</summary>
internal static partial class Sodium
{
    static Sodium()
    {
        if (SodiumInit() < 0)
        {
            throw new InvalidOperationException("sodium_init failed");
        }
    }

    public static bool VerifyEd25519(ReadOnlySpan<byte> signature, ReadOnlySpan<byte> message, ReadOnlySpan<byte> publicKey)
    {
        if (signature.Length != 64 || publicKey.Length != 32)
        {
            return false;
        }

        return CryptoSignVerifyDetached(signature, message, (ulong)message.Length, publicKey) == 0;
    }

    [LibraryImport("libsodium", EntryPoint = "sodium_init")]
    private static partial int SodiumInit();

    [LibraryImport("libsodium", EntryPoint = "crypto_sign_verify_detached")]
    private static partial int CryptoSignVerifyDetached(ReadOnlySpan<byte> signature, ReadOnlySpan<byte> message, ulong messageLength, ReadOnlySpan<byte> publicKey);
}
