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
/// <param name="GuessesUsed">Guesses charged since registration or the last successful recovery.</param>
/// <param name="SealedRecord">The token-sealed record; null unless live.</param>
public sealed record StoredRecord(
    UserIdentity User,
    long Version,
    RecordState State,
    int GuessLimit,
    int GuessesUsed,
    byte[]? SealedRecord)
{
    /// <summary>Guesses left before destruction.</summary>
    public int GuessesRemaining => Math.Max(0, GuessLimit - GuessesUsed);
}
