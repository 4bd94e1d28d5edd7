using System.Security.Cryptography;
using System.Text;

namespace HsmVault.Client;

/// <summary>Backup keys and the 64-digit recovery codes that can stand in for the vault.</summary>
public static class BackupKeys
{
    /// <summary>Length of a backup key, in bytes.</summary>
    public const int KeyBytes = 32;

    /// <summary>Digits in a recovery code.</summary>
    public const int RecoveryCodeDigits = 64;

    private static readonly byte[] RecoveryCodeLabel = Encoding.ASCII.GetBytes("HsmVault recovery code v1");

    /// <summary>A fresh random backup key.</summary>
    public static byte[] NewKey() => RandomNumberGenerator.GetBytes(KeyBytes);

    /// <summary>A short, printable fingerprint of a key (SHA-256, first 8 bytes), to check two copies match without showing the key.</summary>
    public static string Fingerprint(ReadOnlySpan<byte> key)
    {
        Span<byte> digest = stackalloc byte[32];
        SHA256.HashData(key, digest);
        var hex = Convert.ToHexString(digest[..8]).ToLowerInvariant();
        return string.Join(':', Enumerable.Range(0, 4).Select(i => hex.Substring(i * 4, 4)));
    }

    /// <summary>
    /// A new 64-digit recovery code, the alternative WhatsApp offers to a password: the user
    /// writes it down, and the backup key is derived from it without contacting the vault.
    /// 64 uniform digits carry about 212 bits.
    /// </summary>
    public static string NewRecoveryCode()
    {
        var digits = new char[RecoveryCodeDigits];
        for (var i = 0; i < digits.Length; i++)
        {
            digits[i] = (char)('0' + RandomNumberGenerator.GetInt32(10));
        }

        return new string(digits);
    }

    /// <summary>
    /// The backup key a recovery code stands for: HKDF-SHA512 of its 64 digits (spaces and
    /// dashes ignored), info "HsmVault recovery code v1".
    /// </summary>
    /// <exception cref="FormatException">The code is not 64 digits.</exception>
    public static byte[] KeyFromRecoveryCode(string code)
    {
        ArgumentNullException.ThrowIfNull(code);
        var digits = new string(code.Where(c => c is not (' ' or '-')).ToArray());
        if (digits.Length != RecoveryCodeDigits || !digits.All(char.IsAsciiDigit))
        {
            throw new FormatException($"a recovery code is {RecoveryCodeDigits} digits (spaces and dashes allowed)");
        }

        var ikm = Encoding.ASCII.GetBytes(digits);
        try
        {
            return HKDF.DeriveKey(HashAlgorithmName.SHA512, ikm, KeyBytes, salt: [], info: RecoveryCodeLabel);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(ikm);
        }
    }

    /// <summary>Groups a recovery code in blocks of four digits for writing down.</summary>
    public static string FormatRecoveryCode(string code)
    {
        ArgumentNullException.ThrowIfNull(code);
        return string.Join(' ', Enumerable.Range(0, code.Length / 4).Select(i => code.Substring(i * 4, 4)));
    }
}
