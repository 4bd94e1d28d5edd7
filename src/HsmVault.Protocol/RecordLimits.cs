namespace HsmVault.Protocol;

/// <summary>Fixed limits of the vault protocol (vault.proto), for the fleet and its clients alike: each bound is defined here and nowhere else.</summary>
public static class RecordLimits
{
    /// <summary>Fewest guesses a record may allow.</summary>
    public const int MinGuessLimit = 1;

    /// <summary>Most guesses a record may allow: a guess count takes one byte wherever it is stored or sent between members.</summary>
    public const int MaxGuessLimit = byte.MaxValue;

    /// <summary>Largest client-encrypted secret stored, in bytes.</summary>
    public const int MaxEncryptedSecretBytes = 1024;

    /// <summary>Whether <paramref name="guessLimit"/> is a limit a record may have.</summary>
    public static bool IsGuessLimit(long guessLimit) => guessLimit is >= MinGuessLimit and <= MaxGuessLimit;

    /// <summary>
    /// A guess count (a limit, or guesses used or remaining: 0 to <see cref="MaxGuessLimit"/>) as the
    /// one byte commands, results, snapshots and sealed records hold it in.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The count is outside 0 to <see cref="MaxGuessLimit"/>: a bug, never bad input.</exception>
    public static byte CountByte(int count) => count is >= 0 and <= MaxGuessLimit
        ? (byte)count
        : throw new ArgumentOutOfRangeException(nameof(count), count, $"a guess count is 0 to {MaxGuessLimit}");
}
