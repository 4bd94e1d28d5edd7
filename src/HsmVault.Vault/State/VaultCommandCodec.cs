using System.Text;

namespace HsmVault.Vault.State;

/// <summary>
/// The byte form of commands and results as they travel through the replicated log. The
/// format is versioned and length-checked; a log entry that does not decode is a bug or
/// corruption, never user input, so decoding throws.
/// </summary>
public static class VaultCommandCodec
{
    private const byte FormatVersion = 1;

    private enum Kind : byte
    {
        Register = 1,
        ChargeGuess = 2,
        ResetGuesses = 3,
        DestroyIfExhausted = 4,
        Delete = 5,
    }

    /// <summary>Encodes a command for the log.</summary>
    public static byte[] Encode(VaultCommand command)
    {
        ArgumentNullException.ThrowIfNull(command);
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true))
        {
            writer.Write(FormatVersion);
            switch (command)
            {
                case RegisterCommand c:
                    writer.Write((byte)Kind.Register);
                    WriteUser(writer, c.User);
                    writer.Write(c.ExpectedVersion);
                    writer.Write((byte)c.GuessLimit);
                    writer.Write(c.Replace);
                    writer.Write(c.SealedRecord.Length);
                    writer.Write(c.SealedRecord);
                    break;
                case ChargeGuessCommand c:
                    WriteVersioned(writer, Kind.ChargeGuess, c.User, c.Version);
                    break;
                case ResetGuessesCommand c:
                    WriteVersioned(writer, Kind.ResetGuesses, c.User, c.Version);
                    break;
                case DestroyIfExhaustedCommand c:
                    WriteVersioned(writer, Kind.DestroyIfExhausted, c.User, c.Version);
                    break;
                case DeleteCommand c:
                    writer.Write((byte)Kind.Delete);
                    WriteUser(writer, c.User);
                    break;
                default:
                    throw new ArgumentException($"unknown command type {command.GetType().Name}", nameof(command));
            }
        }

        return stream.ToArray();
    }

    /// <summary>Decodes a command from the log.</summary>
    /// <exception cref="InvalidDataException">The bytes are not a command this version understands.</exception>
    public static VaultCommand Decode(ReadOnlySpan<byte> bytes)
    {
        using var stream = new MemoryStream(bytes.ToArray(), writable: false);
        using var reader = new BinaryReader(stream, Encoding.UTF8);
        try
        {
            if (reader.ReadByte() != FormatVersion)
            {
                throw new InvalidDataException("vault command has an unknown format version");
            }

            var kind = (Kind)reader.ReadByte();
            var user = ReadUser(reader);
            VaultCommand command = kind switch
            {
                Kind.Register => ReadRegister(reader, user),
                Kind.ChargeGuess => new ChargeGuessCommand(user, reader.ReadInt64()),
                Kind.ResetGuesses => new ResetGuessesCommand(user, reader.ReadInt64()),
                Kind.DestroyIfExhausted => new DestroyIfExhaustedCommand(user, reader.ReadInt64()),
                Kind.Delete => new DeleteCommand(user),
                _ => throw new InvalidDataException($"vault command has an unknown kind {(byte)kind}"),
            };
            if (stream.Position != stream.Length)
            {
                throw new InvalidDataException("vault command has trailing bytes");
            }

            return command;
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidDataException("vault command is truncated", e);
        }
        catch (Exception e) when (e is FormatException or IOException)
        {
            // BinaryReader.ReadString on a length prefix that never ends or is negative.
            throw new InvalidDataException("vault command has a malformed string length", e);
        }
        catch (VaultException e)
        {
            // UserIdentity refuses an empty, oversized or control-character part.
            throw new InvalidDataException("vault command names an invalid user", e);
        }
    }

    /// <summary>Encodes a result for the proposer.</summary>
    public static byte[] EncodeResult(CommandResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        return [(byte)result.Outcome, (byte)result.GuessesRemaining];
    }

    /// <summary>Decodes a result returned by apply.</summary>
    public static CommandResult DecodeResult(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != 2 || !Enum.IsDefined((CommandOutcome)bytes[0]))
        {
            throw new InvalidDataException("vault command result is malformed");
        }

        return new CommandResult((CommandOutcome)bytes[0], bytes[1]);
    }

    private static RegisterCommand ReadRegister(BinaryReader reader, UserIdentity user)
    {
        var expectedVersion = reader.ReadInt64();
        int guessLimit = reader.ReadByte();
        if (guessLimit < RecordLimits.MinGuessLimit)
        {
            throw new InvalidDataException("vault command has a guess limit of 0");
        }

        var replace = reader.ReadBoolean();
        var length = reader.ReadInt32();
        if (length is < 0 or > 64 * 1024)
        {
            throw new InvalidDataException("vault command has an implausible sealed record length");
        }

        // ReadBytes returns fewer bytes at the end of the stream instead of throwing.
        var sealedRecord = reader.ReadBytes(length);
        if (sealedRecord.Length != length)
        {
            throw new EndOfStreamException();
        }

        return new RegisterCommand(user, expectedVersion, guessLimit, sealedRecord, replace);
    }

    private static void WriteVersioned(BinaryWriter writer, Kind kind, UserIdentity user, long version)
    {
        writer.Write((byte)kind);
        WriteUser(writer, user);
        writer.Write(version);
    }

    private static void WriteUser(BinaryWriter writer, UserIdentity user)
    {
        writer.Write(user.Tenant);
        writer.Write(user.UserId);
    }

    private static UserIdentity ReadUser(BinaryReader reader) => new(reader.ReadString(), reader.ReadString());
}
