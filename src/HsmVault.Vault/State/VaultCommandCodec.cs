using HsmVault.Crypto.Signatures;
using HsmVault.Protocol;
using HsmVault.Protocol.Moves;
using System.Text;

namespace HsmVault.Vault.State;

/// <summary>
/// The byte form of commands and results as they travel through the replicated log. The
/// format is versioned and length-checked; a log entry that does not decode is a bug or
/// corruption, never user input, so decoding throws.
/// </summary>
public static class VaultCommandCodec
{
    private const byte FormatVersion = 2;

    /// <summary>Length of a charge's attempt id.</summary>
    public const int AttemptIdBytes = 16;

    /// <summary>Length of a state digest.</summary>
    public const int DigestBytes = 32;

    private enum Kind : byte
    {
        Register = 1,
        ChargeGuess = 2,
        ResetGuesses = 3,
        DestroyIfExhausted = 4,
        Delete = 5,
        StateDigest = 6,

        /// <summary>A registration with its history event and pending flag; <see cref="Register"/> entries (without them) still decode.</summary>
        RegisterWithHistory = 7,
        Activate = 8,
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
                    writer.Write((byte)Kind.RegisterWithHistory);
                    WriteUser(writer, c.User);
                    writer.Write(c.ExpectedVersion);
                    writer.Write(RecordLimits.CountByte(c.GuessLimit));
                    writer.Write(c.Replace);
                    WriteBytes(writer, c.RegistrationNonce);
                    WriteBytes(writer, c.SealedRecord);
                    writer.Write(c.Pending);
                    WriteBytes(writer, c.Registered is { } registered ? RegistrationHistory.Encode([registered]) : RegistrationHistory.Encode([]));
                    break;
                case ActivateCommand c:
                    WriteVersioned(writer, Kind.Activate, c.User, c.Version);
                    WriteBytes(writer, c.Receipt);
                    writer.Write((byte)c.Algorithm);
                    WriteBytes(writer, c.Signature);
                    break;
                case ChargeGuessCommand c:
                    WriteVersioned(writer, Kind.ChargeGuess, c.User, c.Version);
                    writer.Write(c.AttemptSerial);
                    WriteBytes(writer, c.AttemptId);
                    break;
                case ResetGuessesCommand c:
                    WriteVersioned(writer, Kind.ResetGuesses, c.User, c.Version);
                    writer.Write(c.AttemptSerial);
                    break;
                case DestroyIfExhaustedCommand c:
                    WriteVersioned(writer, Kind.DestroyIfExhausted, c.User, c.Version);
                    break;
                case DeleteCommand c:
                    WriteVersioned(writer, Kind.Delete, c.User, c.Version);
                    break;
                case StateDigestCommand c:
                    writer.Write((byte)Kind.StateDigest);
                    writer.Write(c.Index);
                    WriteBytes(writer, c.Digest);
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
            VaultCommand command = kind switch
            {
                Kind.Register => ReadRegister(reader, ReadUser(reader)),
                Kind.RegisterWithHistory => ReadRegisterWithHistory(reader, ReadRegister(reader, ReadUser(reader))),
                Kind.Activate => ReadActivate(reader, ReadUser(reader), reader.ReadInt64()),
                Kind.ChargeGuess => new ChargeGuessCommand(ReadUser(reader), reader.ReadInt64(), reader.ReadInt64(), ReadBytes(reader, AttemptIdBytes)),
                Kind.ResetGuesses => new ResetGuessesCommand(ReadUser(reader), reader.ReadInt64(), reader.ReadInt64()),
                Kind.DestroyIfExhausted => new DestroyIfExhaustedCommand(ReadUser(reader), reader.ReadInt64()),
                Kind.Delete => new DeleteCommand(ReadUser(reader), reader.ReadInt64()),
                Kind.StateDigest => new StateDigestCommand(reader.ReadUInt64(), ReadBytes(reader, DigestBytes)),
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
    }

    /// <summary>Encodes a result for the proposer.</summary>
    public static byte[] EncodeResult(CommandResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var bytes = new byte[10];
        bytes[0] = (byte)result.Outcome;
        bytes[1] = RecordLimits.CountByte(result.GuessesRemaining);
        System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(bytes.AsSpan(2), result.AttemptSerial);
        return bytes;
    }

    /// <summary>Decodes a result returned by apply.</summary>
    public static CommandResult DecodeResult(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != 10 || !Enum.IsDefined((CommandOutcome)bytes[0]))
        {
            throw new InvalidDataException("vault command result is malformed");
        }

        return new CommandResult((CommandOutcome)bytes[0], bytes[1], System.Buffers.Binary.BinaryPrimitives.ReadInt64BigEndian(bytes[2..]));
    }

    private static RegisterCommand ReadRegister(BinaryReader reader, UserIdentity user)
    {
        var expectedVersion = reader.ReadInt64();
        int guessLimit = reader.ReadByte();
        if (!RecordLimits.IsGuessLimit(guessLimit))
        {
            throw new InvalidDataException($"vault command has a guess limit of {guessLimit}");
        }

        var replace = reader.ReadBoolean();
        var nonce = ReadBytes(reader, UserIdentity.RegistrationNonceBytes);
        var sealedRecord = ReadBytes(reader, expectedLength: null);
        return new RegisterCommand(user, expectedVersion, guessLimit, sealedRecord, replace, nonce);
    }

    private static RegisterCommand ReadRegisterWithHistory(BinaryReader reader, RegisterCommand register)
    {
        var pending = reader.ReadBoolean();
        IReadOnlyList<RegistrationEvent> registered;
        try
        {
            registered = RegistrationHistory.Decode(ReadBytes(reader, expectedLength: null));
        }
        catch (FormatException e)
        {
            throw new InvalidDataException($"vault command has a malformed registration event: {e.Message}", e);
        }

        if (registered.Count > 1)
        {
            throw new InvalidDataException("vault command names more than one registration event");
        }

        return register with { Pending = pending, Registered = registered.Count == 1 ? registered[0] : null };
    }

    private static ActivateCommand ReadActivate(BinaryReader reader, UserIdentity user, long version)
    {
        var receipt = ReadBytes(reader, expectedLength: null);
        var algorithm = (SignatureAlgorithm)reader.ReadByte();
        var signature = ReadBytes(reader, SigningKeyDescription.SignatureBytes);
        if (!Enum.IsDefined(algorithm) || receipt.Length > MoveReceipt.MaxBytes)
        {
            throw new InvalidDataException("vault command has a malformed move receipt or signature algorithm");
        }

        return new ActivateCommand(user, version, receipt, algorithm, signature);
    }

    private static void WriteBytes(BinaryWriter writer, byte[] value)
    {
        writer.Write(value.Length);
        writer.Write(value);
    }

    /// <summary>A length-prefixed byte string, of exactly <paramref name="expectedLength"/> bytes when given.</summary>
    private static byte[] ReadBytes(BinaryReader reader, int? expectedLength)
    {
        var length = reader.ReadInt32();
        if (length is < 0 or > 64 * 1024 || (expectedLength is { } expected && length != expected))
        {
            throw new InvalidDataException($"vault command has a field of implausible length {length}");
        }

        // ReadBytes returns fewer bytes at the end of the stream instead of throwing.
        var value = reader.ReadBytes(length);
        if (value.Length != length)
        {
            throw new EndOfStreamException();
        }

        return value;
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

    private static UserIdentity ReadUser(BinaryReader reader) =>
        UserIdentity.TryCreate(reader.ReadString(), reader.ReadString(), out var user, out var problem)
            ? user
            : throw new InvalidDataException($"vault command names an invalid user: {problem}");
}
