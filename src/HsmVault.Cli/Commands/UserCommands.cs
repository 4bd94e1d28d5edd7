using System.Security.Cryptography;
using HsmVault.Client;

namespace HsmVault.Cli.Commands;

/// <summary>The user's commands: register, recover, status, delete.</summary>
internal static class UserCommands
{
    public static async Task<int> RegisterAsync(Arguments args, CancellationToken cancellationToken)
    {
        var (channel, client) = Connection.Open(args);
        using var _ = channel;
        var guessLimit = args.Int("guess-limit", 0);
        var replace = args.Flag("replace");
        var keyOut = args.Optional("key-out");
        var password = Secrets.ReadPassword(args, confirm: true);
        args.RejectUnknown();
        var backupKey = BackupKeys.NewKey();
        try
        {
            var result = await client.RegisterAsync(password, backupKey, guessLimit, replace, cancellationToken);
            if (keyOut is not null)
            {
                await WriteKeyAsync(keyOut, backupKey, cancellationToken);
            }

            Console.WriteLine($"registered a new backup key, fingerprint {BackupKeys.Fingerprint(backupKey)}");
            Console.WriteLine($"guess limit: {result.GuessLimit}{(result.Replaced ? " (replaced the previous record)" : "")}");
            if (result.FleetId.Length > 0)
            {
                Console.WriteLine($"stored on fleet {result.FleetId}");
            }

            return 0;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(password);
            CryptographicOperations.ZeroMemory(backupKey);
        }
    }

    public static async Task<int> RecoverAsync(Arguments args, CancellationToken cancellationToken)
    {
        var (channel, client) = Connection.Open(args);
        using var _ = channel;
        var keyOut = args.Optional("key-out");
        var password = Secrets.ReadPassword(args, confirm: false);
        args.RejectUnknown();
        try
        {
            var result = await client.RecoverAsync(password, cancellationToken);
            if (result.MovedTo is { } movedTo)
            {
                Console.WriteLine($"moved to fleet {movedTo.FleetId} (epoch {movedTo.Epoch}): the record lives there now, and this fleet signed that it holds none");
            }

            if (result.MoveFailure is { } failure)
            {
                await Console.Error.WriteLineAsync($"the move to the successor fleet did not finish ({failure}); the next recovery finishes it");
            }

            switch (result.Status)
            {
                case RecoveryStatus.Recovered:
                    var key = result.BackupKey!;
                    if (keyOut is not null)
                    {
                        await WriteKeyAsync(keyOut, key, cancellationToken);
                        Console.WriteLine($"recovered the backup key into {keyOut}, fingerprint {BackupKeys.Fingerprint(key)}");
                    }
                    else
                    {
                        Console.WriteLine($"backup key: {Convert.ToHexString(key).ToLowerInvariant()}");
                        Console.WriteLine($"fingerprint: {BackupKeys.Fingerprint(key)}");
                    }

                    CryptographicOperations.ZeroMemory(key);
                    return 0;
                case RecoveryStatus.WrongPassword:
                    await Console.Error.WriteLineAsync($"wrong password; {result.GuessesRemaining} guess{(result.GuessesRemaining == 1 ? "" : "es")} left before the backup key is destroyed");
                    return 3;
                default:
                    await Console.Error.WriteLineAsync("the backup key was destroyed: its last allowed guess has been used, and it cannot be recovered");
                    return 4;
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(password);
        }
    }

    public static async Task<int> StatusAsync(Arguments args, CancellationToken cancellationToken)
    {
        var (channel, client) = Connection.Open(args);
        using var _ = channel;
        args.RejectUnknown();
        var status = await client.GetStatusAsync(cancellationToken);
        Console.WriteLine(status.Registered
            ? $"registered; {status.GuessesRemaining} of {status.GuessLimit} guesses remaining"
            : status.Destroyed ? "not registered: the record was destroyed after its last allowed guess"
            : status.MovePending ? "not live yet: the record is moving here from the previous fleet (the next recovery finishes the move)"
            : "not registered");
        foreach (var registration in status.History)
        {
            var at = DateTimeOffset.FromUnixTimeMilliseconds(registration.RegisteredAtUnixMs);
            Console.WriteLine($"  registered on fleet {registration.FleetId}, bundle epoch {registration.Epoch}, at {at:u}");
        }

        return 0;
    }

    public static async Task<int> DeleteAsync(Arguments args, CancellationToken cancellationToken)
    {
        var (channel, client) = Connection.Open(args);
        using var _ = channel;
        args.RejectUnknown();
        await client.DeleteAsync(cancellationToken);
        Console.WriteLine("deleted");
        return 0;
    }

    private static async Task WriteKeyAsync(string path, byte[] key, CancellationToken cancellationToken)
    {
        await using var stream = PrivateFiles.Create(path, FileMode.Create);
        await stream.WriteAsync(key, cancellationToken);
    }
}
