using System.Security.Cryptography;
using HsmVault.Client;

namespace HsmVault.Cli.Commands;

/// <summary>
/// The 64-digit recovery code: an alternative to a password that never contacts the vault.
/// The code is the user's to keep; the backup key is derived from it.
/// </summary>
internal static class RecoveryCodeCommands
{
    public static int New(Arguments args)
    {
        args.RejectUnknown();
        var code = BackupKeys.NewRecoveryCode();
        var key = BackupKeys.KeyFromRecoveryCode(code);
        Console.WriteLine("Write this recovery code down and keep it safe; it is the only way back to the backup key:");
        Console.WriteLine(BackupKeys.FormatRecoveryCode(code));
        Console.WriteLine($"backup key fingerprint: {BackupKeys.Fingerprint(key)}");
        CryptographicOperations.ZeroMemory(key);
        return 0;
    }

    public static int Key(Arguments args)
    {
        var codeFile = args.Optional("code-file");
        args.RejectUnknown();
        var code = codeFile is null ? Console.In.ReadLine() ?? "" : File.ReadAllText(codeFile).Trim();
        var key = BackupKeys.KeyFromRecoveryCode(code);
        Console.WriteLine($"backup key: {Convert.ToHexString(key).ToLowerInvariant()}");
        Console.WriteLine($"fingerprint: {BackupKeys.Fingerprint(key)}");
        CryptographicOperations.ZeroMemory(key);
        return 0;
    }
}
