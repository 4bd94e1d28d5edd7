using System.Security.Cryptography;
using System.Text;

namespace HsmVault.Cli;

/// <summary>
/// Reads passwords without ever taking them from the command line (where `ps` and shell
/// history would show them): from a prompt with echo off, a file, or standard input. The
/// password stays in byte and char buffers that are wiped, never in a string.
/// </summary>
internal static class Secrets
{
    public static byte[] ReadPassword(Arguments args, bool confirm)
    {
        var file = args.Optional("password-file");
        var fromStdin = args.Flag("password-stdin");
        byte[] password;
        if (file is not null)
        {
            var content = File.ReadAllBytes(file);
            password = FirstLine(content);
            CryptographicOperations.ZeroMemory(content);
        }
        else if (fromStdin)
        {
            password = ReadLine(Console.OpenStandardInput());
        }
        else
        {
            if (Console.IsInputRedirected)
            {
                throw new UsageException("no terminal to ask for the password: use --password-file FILE or --password-stdin");
            }

            password = Prompt("Password: ");
            if (confirm)
            {
                var again = Prompt("Password again: ");
                var same = CryptographicOperations.FixedTimeEquals(password, again);
                CryptographicOperations.ZeroMemory(again);
                if (!same)
                {
                    CryptographicOperations.ZeroMemory(password);
                    throw new UsageException("the two passwords differ");
                }
            }
        }

        if (password.Length == 0)
        {
            throw new UsageException("the password is empty");
        }

        return password;
    }

    private static byte[] FirstLine(ReadOnlySpan<byte> content)
    {
        var end = content.IndexOfAny((byte)'\r', (byte)'\n');
        return (end < 0 ? content : content[..end]).ToArray();
    }

    private static byte[] ReadLine(Stream input)
    {
        var buffer = new byte[4096];
        var length = 0;
        int next;
        while (length < buffer.Length && (next = input.ReadByte()) is >= 0 and not '\n')
        {
            buffer[length++] = (byte)next;
        }

        var line = FirstLine(buffer.AsSpan(0, length));
        CryptographicOperations.ZeroMemory(buffer);
        return line;
    }

    private static byte[] Prompt(string label)
    {
        Console.Error.Write(label);
        var chars = new char[1024];
        var length = 0;
        try
        {
            while (true)
            {
                var key = Console.ReadKey(intercept: true);
                if (key.Key == ConsoleKey.Enter)
                {
                    Console.Error.WriteLine();
                    return Encoding.UTF8.GetBytes(chars, 0, length);
                }

                if (key.Key == ConsoleKey.Backspace)
                {
                    length = Math.Max(0, length - 1);
                }
                else if (!char.IsControl(key.KeyChar) && length < chars.Length)
                {
                    chars[length++] = key.KeyChar;
                }
            }
        }
        finally
        {
            Array.Clear(chars);
        }
    }
}
