using HsmVault.Protocol;

namespace HsmVault.Vault.State;

/// <summary>
/// The last few charges of a record, each kept as the serving member's attempt id and the
/// guesses it left. A member whose commit timed out looks its own charge up here, and answers
/// with what that charge left, never with the record's count now: a proven password may have
/// reset the count since, and "4 remaining" for a guess charged at 3 would be an answer no order
/// of events explains.
/// </summary>
/// <remarks>
/// Encoding: up to <see cref="Kept"/> entries, oldest first, each <see cref="VaultCommandCodec.AttemptIdBytes"/>
/// of attempt id then one byte of guesses remaining. States written before the remaining count
/// was kept hold bare 16-byte ids; <see cref="Normalize"/> drops those (a member that finds no
/// charge of its own proposes again and the serial decides, so the worst case is one guess
/// charged twice, never one refunded).
/// </remarks>
public static class RecentCharges
{
    /// <summary>How many charges a record remembers.</summary>
    public const int Kept = 4;

    private const int EntryBytes = VaultCommandCodec.AttemptIdBytes + 1;

    /// <summary>The largest encoding, in bytes.</summary>
    public const int MaxBytes = Kept * EntryBytes;

    /// <summary><paramref name="recent"/> with a charge by <paramref name="attemptId"/> that left <paramref name="remaining"/> appended, keeping the newest <see cref="Kept"/>.</summary>
    public static byte[] Remember(byte[]? recent, byte[] attemptId, int remaining)
    {
        ArgumentNullException.ThrowIfNull(attemptId);
        if (attemptId.Length != VaultCommandCodec.AttemptIdBytes)
        {
            throw new ArgumentException($"an attempt id is {VaultCommandCodec.AttemptIdBytes} bytes", nameof(attemptId));
        }

        byte[] all = [.. Normalize(recent) ?? [], .. attemptId, RecordLimits.CountByte(remaining)];
        return all.Length > MaxBytes ? all[^MaxBytes..] : all;
    }

    /// <summary>The guesses left by the remembered charge of <paramref name="attemptId"/>, or null when none of the last charges was it.</summary>
    public static int? RemainingAfter(byte[]? recent, ReadOnlySpan<byte> attemptId)
    {
        var entries = Normalize(recent) ?? [];
        for (var offset = 0; offset + EntryBytes <= entries.Length; offset += EntryBytes)
        {
            if (entries.AsSpan(offset, VaultCommandCodec.AttemptIdBytes).SequenceEqual(attemptId))
            {
                return entries[offset + VaultCommandCodec.AttemptIdBytes];
            }
        }

        return null;
    }

    /// <summary>Whether <paramref name="length"/> is that of a stored encoding, current or earlier.</summary>
    public static bool IsValidLength(int length) =>
        length is >= 0 and <= MaxBytes && (length % EntryBytes == 0 || IsBareIds(length));

    /// <summary>The current encoding of what was stored: bare ids of an earlier state become nothing.</summary>
    public static byte[]? Normalize(byte[]? stored) => stored is null || IsBareIds(stored.Length) ? null : stored;

    private static bool IsBareIds(int length) =>
        length is > 0 and <= Kept * VaultCommandCodec.AttemptIdBytes && length % VaultCommandCodec.AttemptIdBytes == 0;
}
