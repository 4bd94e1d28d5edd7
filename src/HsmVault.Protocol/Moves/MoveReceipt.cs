using System.Buffers.Binary;
using System.Text;

namespace HsmVault.Protocol.Moves;

/// <summary>One registration of a user's record: on which fleet, under which bundle epoch, when.</summary>
/// <param name="FleetId">The fleet that stored the record.</param>
/// <param name="Epoch">The epoch of the validation bundle that fleet served then (0: it served none).</param>
/// <param name="RegisteredAtUnixMs">When, by the serving member's clock, in milliseconds since 1970.</param>
public sealed record RegistrationEvent(string FleetId, ulong Epoch, long RegisteredAtUnixMs);

/// <summary>
/// A record's registration history, oldest first, in its one byte form: kept with the record in the
/// replicated state, carried by move receipts and shown to clients (GetStatusResponse.history), as
/// Messenger's client shows a "restore history".
/// </summary>
/// <remarks>
/// Encoding: <c>u8 count</c>, then per event <c>u8 n</c> and the n ASCII bytes of the fleet id,
/// <c>u64 epoch</c>, <c>i64 registered_at_unix_ms</c> (big-endian). At most <see cref="MaxEvents"/>
/// events: appending to a full history drops the oldest.
/// </remarks>
public static class RegistrationHistory
{
    /// <summary>Most events a history keeps.</summary>
    public const int MaxEvents = 16;

    /// <summary>The empty history, of a record stored before histories were kept.</summary>
    public static IReadOnlyList<RegistrationEvent> Empty { get; } = [];

    /// <summary><paramref name="history"/> followed by <paramref name="next"/>, keeping the newest <see cref="MaxEvents"/>.</summary>
    public static IReadOnlyList<RegistrationEvent> Append(IReadOnlyList<RegistrationEvent> history, params IEnumerable<RegistrationEvent> next)
    {
        List<RegistrationEvent> all = [.. history, .. next];
        return all.Count > MaxEvents ? all[^MaxEvents..] : all;
    }

    /// <summary>The canonical bytes of <paramref name="history"/>.</summary>
    public static byte[] Encode(IReadOnlyList<RegistrationEvent> history)
    {
        ArgumentNullException.ThrowIfNull(history);
        if (history.Count > MaxEvents)
        {
            throw new ArgumentException($"a history has at most {MaxEvents} events", nameof(history));
        }

        var bytes = new List<byte> { (byte)history.Count };
        foreach (var entry in history)
        {
            MoveEncoding.WriteShortAscii(bytes, entry.FleetId, "fleet id");
            MoveEncoding.WriteUInt64(bytes, entry.Epoch);
            MoveEncoding.WriteUInt64(bytes, (ulong)entry.RegisteredAtUnixMs);
        }

        return [.. bytes];
    }

    /// <summary>Parses a history; anything but exactly one canonical history throws.</summary>
    /// <exception cref="FormatException">The bytes are not a history.</exception>
    public static IReadOnlyList<RegistrationEvent> Decode(ReadOnlySpan<byte> bytes)
    {
        var reader = new MoveEncoding.Reader(bytes);
        var history = reader.History();
        reader.End();
        return history;
    }
}

/// <summary>
/// What a fleet signs, with its token-held fleet signing key, when a user's record leaves it for
/// another fleet: that the user has no live record on <see cref="FromFleet"/> any more, and which
/// pending registration on <see cref="ToFleet"/> may now become live. The new fleet activates that
/// registration only with this receipt (checked where the command is applied), so a user is never
/// left with two live records, each with its own guesses.
/// </summary>
/// <param name="FromFleet">The fleet the record left (the signer).</param>
/// <param name="ToFleet">The fleet that may activate the pending record.</param>
/// <param name="Tenant">The user's tenant.</param>
/// <param name="UserId">The user.</param>
/// <param name="TargetVersion">The version of the pending record on <see cref="ToFleet"/> (FinishRegistrationResponse.record_version).</param>
/// <param name="History">The record's history on <see cref="FromFleet"/>, carried over to the new record.</param>
/// <remarks>
/// Encoding: <c>"HsmVault move receipt v1" || 0x00</c>, then <c>u8 n</c> + ASCII for each fleet id,
/// <c>u16 n</c> + UTF-8 for tenant and user id, <c>u64 target_version</c>, and the
/// <see cref="RegistrationHistory"/> encoding; integers big-endian. The signature covers exactly these bytes.
/// </remarks>
public sealed record MoveReceipt(string FromFleet, string ToFleet, string Tenant, string UserId, long TargetVersion, IReadOnlyList<RegistrationEvent> History)
{
    /// <summary>Domain-separation prefix of the signed bytes.</summary>
    public static ReadOnlySpan<byte> Prefix => "HsmVault move receipt v1\0"u8;

    /// <summary>Largest receipt accepted, in bytes.</summary>
    public const int MaxBytes = 4096;

    /// <summary>The canonical bytes, which the old fleet signs.</summary>
    public byte[] Encode()
    {
        var bytes = new List<byte>(Prefix.ToArray());
        MoveEncoding.WriteShortAscii(bytes, FromFleet, "fleet id");
        MoveEncoding.WriteShortAscii(bytes, ToFleet, "fleet id");
        MoveEncoding.WriteUtf8(bytes, Tenant);
        MoveEncoding.WriteUtf8(bytes, UserId);
        MoveEncoding.WriteUInt64(bytes, (ulong)TargetVersion);
        bytes.AddRange(RegistrationHistory.Encode(History));
        return [.. bytes];
    }

    /// <summary>Parses a receipt; anything but exactly one canonical receipt throws.</summary>
    /// <exception cref="FormatException">The bytes are not a move receipt, with what is wrong.</exception>
    public static MoveReceipt Decode(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length > MaxBytes)
        {
            throw new FormatException($"a move receipt has at most {MaxBytes} bytes; got {bytes.Length}");
        }

        if (!bytes.StartsWith(Prefix))
        {
            throw new FormatException("not a move receipt: it does not start with \"HsmVault move receipt v1\"");
        }

        var reader = new MoveEncoding.Reader(bytes[Prefix.Length..]);
        var receipt = new MoveReceipt(reader.ShortAscii("from fleet id"), reader.ShortAscii("to fleet id"), reader.Utf8("tenant"), reader.Utf8("user id"),
            (long)reader.UInt64("target version"), reader.History());
        reader.End();
        if (receipt.TargetVersion < 1)
        {
            throw new FormatException("a move receipt's target version is at least 1");
        }

        return receipt;
    }
}

/// <summary>The integer and string encodings of <see cref="MoveReceipt"/> and <see cref="RegistrationHistory"/>.</summary>
internal static class MoveEncoding
{
    public static void WriteShortAscii(List<byte> bytes, string value, string what)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (value.Length is 0 or > byte.MaxValue || !Ascii.IsValid(value))
        {
            throw new ArgumentException($"a {what} is 1 to 255 ASCII characters", nameof(value));
        }

        bytes.Add((byte)value.Length);
        bytes.AddRange(Encoding.ASCII.GetBytes(value));
    }

    public static void WriteUtf8(List<byte> bytes, string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        var encoded = Encoding.UTF8.GetBytes(value);
        Span<byte> length = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16BigEndian(length, checked((ushort)encoded.Length));
        bytes.AddRange(length);
        bytes.AddRange(encoded);
    }

    public static void WriteUInt64(List<byte> bytes, ulong value)
    {
        Span<byte> encoded = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(encoded, value);
        bytes.AddRange(encoded);
    }

    /// <summary>Reads the encodings above, throwing <see cref="FormatException"/> at the first defect.</summary>
    public ref struct Reader(ReadOnlySpan<byte> bytes)
    {
        private ReadOnlySpan<byte> _rest = bytes;

        public string ShortAscii(string what)
        {
            var length = Take(1, what)[0];
            var value = Take(length, what);
            if (length == 0 || !Ascii.IsValid(value))
            {
                throw new FormatException($"the {what} is not 1 to 255 ASCII characters");
            }

            return Encoding.ASCII.GetString(value);
        }

        public string Utf8(string what)
        {
            var length = BinaryPrimitives.ReadUInt16BigEndian(Take(2, what));
            var value = Take(length, what);
            try
            {
                return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(value);
            }
            catch (DecoderFallbackException e)
            {
                throw new FormatException($"the {what} is not valid UTF-8", e);
            }
        }

        public ulong UInt64(string what) => BinaryPrimitives.ReadUInt64BigEndian(Take(8, what));

        public IReadOnlyList<RegistrationEvent> History()
        {
            int count = Take(1, "history")[0];
            if (count > RegistrationHistory.MaxEvents)
            {
                throw new FormatException($"a history has at most {RegistrationHistory.MaxEvents} events; this one claims {count}");
            }

            var events = new List<RegistrationEvent>(count);
            for (var i = 0; i < count; i++)
            {
                events.Add(new RegistrationEvent(ShortAscii("history's fleet id"), UInt64("history's epoch"), (long)UInt64("history's time")));
            }

            return events;
        }

        public readonly void End()
        {
            if (!_rest.IsEmpty)
            {
                throw new FormatException($"{_rest.Length} bytes follow the end");
            }
        }

        private ReadOnlySpan<byte> Take(int length, string what)
        {
            if (_rest.Length < length)
            {
                throw new FormatException($"truncated in the {what}");
            }

            var taken = _rest[..length];
            _rest = _rest[length..];
            return taken;
        }
    }
}
