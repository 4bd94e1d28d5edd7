using HsmVault.Crypto.Signatures;
using HsmVault.Protocol;
using HsmVault.Protocol.Moves;

namespace HsmVault.Vault.State;

/// <summary>
/// A write to the vault's replicated state. Commands carry everything apply needs (the
/// sealed blob is made by the serving member before proposing), so apply is deterministic
/// and never calls the token. Each travels in the log inside a <see cref="Signing.SignedCommand"/>.
/// </summary>
/// <remarks>
/// Every command names the state it was decided on (the record version, and for guesses the
/// attempt serial). Apply refuses a command whose state no longer matches, so a write decided
/// on stale state cannot take effect, and a captured command replayed later matches nothing.
/// </remarks>
public abstract record VaultCommand;

/// <summary>A command about one user's record, decided by <see cref="RecordTransitions"/>.</summary>
/// <param name="User">Whose record.</param>
public abstract record RecordCommand(UserIdentity User) : VaultCommand;

/// <summary>Stores a new registration, or replaces one when <paramref name="Replace"/> is set.</summary>
/// <param name="User">Whose record.</param>
/// <param name="ExpectedVersion">The version the serving member read (0: no row at all).</param>
/// <param name="GuessLimit">Guesses allowed, within <see cref="RecordLimits"/>.</param>
/// <param name="SealedRecord">The record sealed for version <c>ExpectedVersion + 1</c>.</param>
/// <param name="Replace">Whether an existing live record may be overwritten.</param>
/// <param name="RegistrationNonce">The nonce of the registration ticket used: each may register once, fleet-wide.</param>
/// <param name="Registered">This registration, for the record's history (null in log entries written before histories were kept).</param>
/// <param name="Pending">The record moves here from a predecessor fleet: stored <see cref="RecordState.Pending"/> until an <see cref="ActivateCommand"/>.</param>
public sealed record RegisterCommand(
    UserIdentity User, long ExpectedVersion, int GuessLimit, byte[] SealedRecord, bool Replace, byte[] RegistrationNonce,
    RegistrationEvent? Registered = null, bool Pending = false)
    : RecordCommand(User);

/// <summary>
/// A pending record becomes live: its predecessor fleet's signed <see cref="MoveReceipt"/> says the
/// user has no live record there any more. The receipt is verified again where the command is
/// applied (<see cref="Signing.CommandVerifier"/>), against the predecessor keys every member holds.
/// </summary>
/// <param name="User">Whose record.</param>
/// <param name="Version">The pending record's version, which the receipt names.</param>
/// <param name="Receipt">The receipt's canonical bytes.</param>
/// <param name="Algorithm">The predecessor's signature algorithm.</param>
/// <param name="Signature">The predecessor's signature of <paramref name="Receipt"/>.</param>
public sealed record ActivateCommand(UserIdentity User, long Version, byte[] Receipt, SignatureAlgorithm Algorithm, byte[] Signature) : RecordCommand(User);

/// <summary>Charges one guess before a recovery's KE2 may leave the member.</summary>
/// <param name="User">Whose record.</param>
/// <param name="Version">The record version the serving member read.</param>
/// <param name="AttemptSerial">The record's <see cref="StoredRecord.AttemptSerial"/> the serving member read; this charge makes it one more.</param>
/// <param name="AttemptId">Chosen by the serving member; stored with the charge, so a member whose commit timed out can tell whether it was its own.</param>
public sealed record ChargeGuessCommand(UserIdentity User, long Version, long AttemptSerial, byte[] AttemptId) : RecordCommand(User);

/// <summary>A recovery's KE3 verified: the guesses charged up to that attempt are forgiven.</summary>
/// <param name="User">Whose record.</param>
/// <param name="Version">The record version the recovery charged.</param>
/// <param name="AttemptSerial">The serial the recovery's charge gave the record: the attempt whose password was proven.</param>
public sealed record ResetGuessesCommand(UserIdentity User, long Version, long AttemptSerial) : RecordCommand(User);

/// <summary>A recovery's KE3 failed on the last allowed guess: the record is destroyed.</summary>
public sealed record DestroyIfExhaustedCommand(UserIdentity User, long Version) : RecordCommand(User);

/// <summary>The user deletes their record.</summary>
/// <param name="User">Whose record.</param>
/// <param name="Version">The record version the serving member read.</param>
public sealed record DeleteCommand(UserIdentity User, long Version) : RecordCommand(User);

/// <summary>
/// The proposing member's digest of the vault state at <paramref name="Index"/>: every member
/// compares it with its own at apply and stops serving when they differ (see
/// <see cref="StateDigestChain"/>). Names no user.
/// </summary>
public sealed record StateDigestCommand(ulong Index, byte[] Digest) : VaultCommand;

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

    /// <summary>A failed guess that still leaves guesses, or a reset already made: nothing changed.</summary>
    Unchanged = 10,

    /// <summary>The registration ticket was used before: nothing was done.</summary>
    TicketAlreadyUsed = 11,

    /// <summary>The command's signature or signer did not verify: nothing was done, and every member reported it.</summary>
    Refused = 12,

    /// <summary>A state digest was compared.</summary>
    DigestChecked = 13,

    /// <summary>The record moved here and waits for its predecessor's receipt: nothing was done.</summary>
    MovePending = 14,

    /// <summary>A pending record became live.</summary>
    Activated = 15,
}

/// <summary>What applying a command did, returned to the member that proposed it.</summary>
/// <param name="Outcome">What happened.</param>
/// <param name="GuessesRemaining">Guesses left after the command.</param>
/// <param name="AttemptSerial">The record's attempt serial after the command.</param>
public sealed record CommandResult(CommandOutcome Outcome, int GuessesRemaining = 0, long AttemptSerial = 0);
