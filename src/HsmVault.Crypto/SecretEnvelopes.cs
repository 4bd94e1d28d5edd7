using System.Security.Cryptography;
using System.Text;

namespace HsmVault.Crypto;

/// <summary>
/// The two AES-256-GCM envelopes of the HsmVault protocol, shared by client and server so
/// that both sides agree on them byte for byte (and the proto file documents them):
/// <list type="bullet">
/// <item>the backup key, encrypted by the client under a key from OPAQUE's export_key before
/// it is stored (the vault never sees the backup key);</item>
/// <item>the stored ciphertext, sealed once more under a key from the login's session key
/// when a recovery succeeds.</item>
/// </list>
/// Layout: <c>nonce(12) || ciphertext || tag(16)</c>; key = HKDF-Expand-SHA512(secret, label, 32).
/// </summary>
public static class SecretEnvelopes
{
    /// <summary>Bytes an envelope adds to its plaintext.</summary>
    public const int Overhead = NonceBytes + TagBytes;

    private const int NonceBytes = 12;
    private const int TagBytes = 16;
    private static readonly byte[] BackupKeyLabel = Encoding.ASCII.GetBytes("HsmVault backup key v1");
    private static readonly byte[] ReleaseLabel = Encoding.ASCII.GetBytes("HsmVault release v1");

    /// <summary>Client side, at registration: encrypts the backup key under export_key.</summary>
    public static byte[] EncryptBackupKey(ReadOnlySpan<byte> exportKey, ReadOnlySpan<byte> backupKey) =>
        Seal(exportKey, BackupKeyLabel, associatedData: [], backupKey);

    /// <summary>Client side, after recovery: decrypts the backup key; null when export_key does not fit.</summary>
    public static byte[]? DecryptBackupKey(ReadOnlySpan<byte> exportKey, ReadOnlySpan<byte> encryptedBackupKey) =>
        Open(exportKey, BackupKeyLabel, associatedData: [], encryptedBackupKey);

    /// <summary>Server side: seals the stored ciphertext for release under the login's session key.</summary>
    public static byte[] SealForRelease(ReadOnlySpan<byte> sessionKey, ReadOnlySpan<byte> sessionId, ReadOnlySpan<byte> encryptedSecret) =>
        Seal(sessionKey, ReleaseLabel, sessionId, encryptedSecret);

    /// <summary>Client side: opens a released secret; null when it does not authenticate.</summary>
    public static byte[]? OpenRelease(ReadOnlySpan<byte> sessionKey, ReadOnlySpan<byte> sessionId, ReadOnlySpan<byte> releasedSecret) =>
        Open(sessionKey, ReleaseLabel, sessionId, releasedSecret);

    private static byte[] Seal(ReadOnlySpan<byte> secret, byte[] label, ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> plaintext)
    {
        Span<byte> key = stackalloc byte[32];
        try
        {
            HKDF.Expand(HashAlgorithmName.SHA512, secret, key, label);
            var output = new byte[NonceBytes + plaintext.Length + TagBytes];
            var nonce = output.AsSpan(0, NonceBytes);
            RandomNumberGenerator.Fill(nonce);
            using var aes = new AesGcm(key, TagBytes);
            aes.Encrypt(nonce, plaintext, output.AsSpan(NonceBytes, plaintext.Length), output.AsSpan(NonceBytes + plaintext.Length), associatedData);
            return output;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    private static byte[]? Open(ReadOnlySpan<byte> secret, byte[] label, ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> envelope)
    {
        if (envelope.Length < Overhead)
        {
            return null;
        }

        Span<byte> key = stackalloc byte[32];
        try
        {
            HKDF.Expand(HashAlgorithmName.SHA512, secret, key, label);
            var plaintext = new byte[envelope.Length - Overhead];
            using var aes = new AesGcm(key, TagBytes);
            try
            {
                aes.Decrypt(envelope[..NonceBytes], envelope[NonceBytes..^TagBytes], envelope[^TagBytes..], plaintext, associatedData);
                return plaintext;
            }
            catch (AuthenticationTagMismatchException)
            {
                return null;
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }
}
