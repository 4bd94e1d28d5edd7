namespace HsmVault.Vault.State;

/// <summary>
/// A write to the vault's replicated state. Commands carry everything apply needs (the
/// sealed blob is made by the serving member before proposing), so apply is deterministic
/// and never calls the token.
/// </summary>
/// <remarks>
/// Every command names the record version the serving member read. Apply refuses a command
/// whose version no longer matches, so a write decided on stale state cannot take effect.
/// </remarks>
public abstract record VaultCommand(UserIdentity User);

/// <summary>Stores a new registration, or replaces one when <paramref name="Replace"/> is set.</summary>
/// <param name="User">Whose record.</param>
/// <param name="ExpectedVersion">The version the serving member read (0: no row at all).</param>
/// <param name="GuessLimit">Guesses allowed, 1..255.</param>
/// <param name="SealedRecord">The record sealed for version <c>ExpectedVersion + 1</c>.</param>
/// <param name="Replace">Whether an existing live record may be overwritten.</param>
public sealed record RegisterCommand(UserIdentity User, long ExpectedVersion, int GuessLimit, byte[] SealedRecord, bool Replace)
    : VaultCommand(User);

/// <summary>Charges one guess before a recovery's KE2 may leave the member.</summary>
public sealed record ChargeGuessCommand(UserIdentity User, long Version) : VaultCommand(User);

/// <summary>A recovery's KE3 verified: the guess count goes back to zero.</summary>
public sealed record ResetGuessesCommand(UserIdentity User, long Version) : VaultCommand(User);

/// <summary>A recovery's KE3 failed on the last allowed guess: the record is destroyed.</summary>
public sealed record DestroyIfExhaustedCommand(UserIdentity User, long Version) : VaultCommand(User);

/// <summary>The user deletes their record.</summary>
public sealed record DeleteCommand(UserIdentity User) : VaultCommand(User);

/// <summary>How apply answered a command.</summary>
public enum CommandOutcome : byte
{
    /// <summary>The record was stored (registration).</summary>
    Registered = 1,

    /// <summary>An existing live record was replaced.</summary>
    Replaced = 2,

    /// <summary>A live record exists and the command did not ask to replace it.</summary>
    AlreadyRegistered = 3,

    /// <summary>One guess was charged; <see cref="CommandResult.GuessesRemaining"/> says how many are left.</summary>
    Charged = 4,

    /// <summary>The guess count is back to zero.</summary>
    Reset = 5,

    /// <summary>The record is destroyed (now, or earlier).</summary>
    Destroyed = 6,

    /// <summary>Nothing to act on: no live record.</summary>
    NotRegistered = 7,

    /// <summary>The record changed since the serving member read it; nothing was done.</summary>
    VersionConflict = 8,

    /// <summary>The record was deleted.</summary>
    Deleted = 9,

    /// <summary>A failed guess that still leaves guesses: nothing changed.</summary>
    Unchanged = 10,
}

/// <summary>What applying a command did, returned to the member that proposed it.</summary>
public sealed record CommandResult(CommandOutcome Outcome, int GuessesRemaining = 0);
