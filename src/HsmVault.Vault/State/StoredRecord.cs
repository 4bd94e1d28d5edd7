using HsmVault.Protocol.Moves;

namespace HsmVault.Vault.State;

/// <summary>Where a user's record is in its life.</summary>
public enum RecordState
{
    /// <summary>Registered and usable.</summary>
    Live = 1,

    /// <summary>Deleted by the user; the sealed blob is gone.</summary>
    Deleted = 2,

    /// <summary>Destroyed after its last allowed guess; the sealed blob is gone.</summary>
    Destroyed = 3,

    /// <summary>
    /// Moved here from a predecessor fleet and not live yet: stored, but neither recoverable nor
    /// counted as a live record until the predecessor's receipt activates it.
    /// </summary>
    Pending = 4,
}

/// <summary>
/// One user's row in the replicated state. Rows are never removed: a deleted or destroyed
/// record keeps its version as a tombstone, so a later registration gets a new version and
/// an old sealed blob can never be put back in its place (the version is in the blob's
/// associated data).
/// </summary>
/// <param name="User">Whose record.</param>
/// <param name="Version">Bumped by every registration or replacement; bound into the seal.</param>
/// <param name="State">Live, deleted or destroyed.</param>
/// <param name="GuessLimit">Guesses allowed before destruction.</param>
/// <param name="GuessesUsed">Guesses charged and not forgiven by a later proven password.</param>
/// <param name="SealedRecord">The token-sealed record; null unless live.</param>
/// <param name="AttemptSerial">Guesses ever charged on this version; only ever grows, so every charge has its own number.</param>
/// <param name="LastResetSerial">The attempt whose proven password last reset the count; a reset for it or an earlier one does nothing.</param>
/// <param name="RecentCharges">The last charges in <see cref="State.RecentCharges"/>' encoding: who served each and what it left (null before any).</param>
/// <param name="History">The record's registrations in <see cref="RegistrationHistory"/>'s encoding (null: none kept, a record stored before histories).</param>
public sealed record StoredRecord(
    UserIdentity User,
    long Version,
    RecordState State,
    int GuessLimit,
    int GuessesUsed,
    byte[]? SealedRecord,
    long AttemptSerial = 0,
    long LastResetSerial = 0,
    byte[]? RecentCharges = null,
    byte[]? History = null)
{
    /// <summary>The registrations of <see cref="History"/>, oldest first.</summary>
    public IReadOnlyList<RegistrationEvent> Registrations => History is null ? RegistrationHistory.Empty : RegistrationHistory.Decode(History);

    /// <summary>Whether a sealed record is stored (live or pending).</summary>
    public bool HoldsRecord => State is RecordState.Live or RecordState.Pending;

    /// <summary>Guesses left before destruction.</summary>
    public int GuessesRemaining => Math.Max(0, GuessLimit - GuessesUsed);
}
