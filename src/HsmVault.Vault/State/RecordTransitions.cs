using HsmVault.Protocol.Moves;

namespace HsmVault.Vault.State;

/// <summary>
/// The vault's rules, as a pure function from (current record, command) to (next record,
/// result). This is the one place that decides how guesses are counted, when a record is
/// destroyed and when a registration may overwrite another. It runs inside apply, on every
/// member, in log order, so it must be deterministic: no clock, no randomness, no token.
/// </summary>
public static class RecordTransitions
{
    /// <summary>Applies <paramref name="command"/> to <paramref name="current"/> (null: no row).</summary>
    /// <returns>The row to store (null: leave the row as it is) and the answer for the proposer.</returns>
    public static (StoredRecord? Next, CommandResult Result) Apply(StoredRecord? current, RecordCommand command)
    {
        ArgumentNullException.ThrowIfNull(command);
        return command switch
        {
            RegisterCommand c => Register(current, c),
            ChargeGuessCommand c => ChargeGuess(current, c),
            ResetGuessesCommand c => ResetGuesses(current, c),
            DestroyIfExhaustedCommand c => DestroyIfExhausted(current, c),
            DeleteCommand c => Delete(current, c),
            ActivateCommand c => Activate(current, c),
            _ => throw new ArgumentException($"unknown command type {command.GetType().Name}", nameof(command)),
        };
    }

    /// <summary>
    /// The attempt-counting rule. A guess is charged before the server answers it (KE2), so
    /// every answered guess was counted. While guesses remain, charging uses one up and gives
    /// the attempt the next serial. A record whose every guess has been charged is destroyed by
    /// the next attempt, whether or not the last guess was ever finished: abandoning a login
    /// never refunds it. A charge names the serial it was decided on, so it applies once: a
    /// replayed or duplicated charge finds the serial moved on and changes nothing (it neither
    /// charges again nor destroys).
    /// </summary>
    private static (StoredRecord?, CommandResult) ChargeGuess(StoredRecord? current, ChargeGuessCommand command)
    {
        if (NotActionable(current, command.Version) is { } refusal)
        {
            return (null, refusal);
        }

        // The serial first: a duplicate of the charge that used the last guess (a member
        // proposing again a charge whose outcome it lost) must find the serial moved on, not
        // destroy the record, or the last guess would be charged and its answer never given.
        if (current!.AttemptSerial != command.AttemptSerial)
        {
            return (null, new CommandResult(CommandOutcome.VersionConflict, current.GuessesRemaining, current.AttemptSerial));
        }

        if (current.GuessesUsed >= current.GuessLimit)
        {
            return Destroy(current);
        }

        var used = current.GuessesUsed + 1;
        var charged = current with
        {
            GuessesUsed = used,
            AttemptSerial = current.AttemptSerial + 1,
            RecentCharges = RecentCharges.Remember(current.RecentCharges, command.AttemptId, current.GuessLimit - used),
        };
        return (charged, new CommandResult(CommandOutcome.Charged, charged.GuessesRemaining, charged.AttemptSerial));
    }

    /// <summary>
    /// A verified KE3 proves the password: the count starts again. Each charged attempt can
    /// reset once: a replayed reset, one for an attempt already covered by a later reset, or one
    /// naming a serial never charged, changes nothing.
    /// </summary>
    private static (StoredRecord?, CommandResult) ResetGuesses(StoredRecord? current, ResetGuessesCommand command)
    {
        if (NotActionable(current, command.Version) is { } refusal)
        {
            return (null, refusal);
        }

        if (command.AttemptSerial <= current!.LastResetSerial || command.AttemptSerial > current.AttemptSerial)
        {
            return (null, new CommandResult(CommandOutcome.Unchanged, current.GuessesRemaining, current.AttemptSerial));
        }

        var reset = current with { GuessesUsed = 0, LastResetSerial = command.AttemptSerial };
        return (reset, new CommandResult(CommandOutcome.Reset, reset.GuessesRemaining, reset.AttemptSerial));
    }

    /// <summary>A wrong KE3 on the last allowed guess destroys the record at once, rather than at the next attempt.</summary>
    private static (StoredRecord?, CommandResult) DestroyIfExhausted(StoredRecord? current, DestroyIfExhaustedCommand command)
    {
        if (NotActionable(current, command.Version) is { } refusal)
        {
            return (null, refusal);
        }

        return current!.GuessesUsed >= current.GuessLimit
            ? Destroy(current)
            : (null, new CommandResult(CommandOutcome.Unchanged, current.GuessesRemaining, current.AttemptSerial));
    }

    /// <summary>
    /// A registration over a live record needs the explicit replace flag, because replacing
    /// resets the guess count. Over nothing, a deleted, a destroyed or a pending record it is a
    /// fresh start. A record moving in from a predecessor fleet is stored pending, and never over
    /// a live one: replacing it would leave the user with no live record until the move finished.
    /// The history grows by this registration; a pending record starts its own, which activation
    /// puts after the predecessor's.
    /// </summary>
    private static (StoredRecord?, CommandResult) Register(StoredRecord? current, RegisterCommand command)
    {
        var currentVersion = current?.Version ?? 0;
        if (currentVersion != command.ExpectedVersion)
        {
            return (null, new CommandResult(CommandOutcome.VersionConflict));
        }

        var isLive = current?.State == RecordState.Live;
        if (isLive && (!command.Replace || command.Pending))
        {
            return (null, new CommandResult(CommandOutcome.AlreadyRegistered, current!.GuessesRemaining));
        }

        var earlier = command.Pending || current is null or { State: RecordState.Pending } ? RegistrationHistory.Empty : current.Registrations;
        var history = command.Registered is { } registered ? RegistrationHistory.Append(earlier, registered) : earlier;
        var next = new StoredRecord(command.User, currentVersion + 1, command.Pending ? RecordState.Pending : RecordState.Live, command.GuessLimit, 0, command.SealedRecord,
            History: history.Count == 0 ? null : RegistrationHistory.Encode(history));
        return (next, new CommandResult(isLive ? CommandOutcome.Replaced : CommandOutcome.Registered, next.GuessesRemaining));
    }

    /// <summary>
    /// The move rule: a pending record becomes live only with its predecessor's receipt for this very
    /// version (the receipt's signature is checked where the command is applied, before this rule), so
    /// at no point does the user hold two live records, and a receipt for an earlier move activates
    /// nothing later. Activating a record this receipt already activated changes nothing.
    /// </summary>
    private static (StoredRecord?, CommandResult) Activate(StoredRecord? current, ActivateCommand command)
    {
        if (current is null || current.Version != command.Version)
        {
            return (null, new CommandResult(current is null ? CommandOutcome.NotRegistered : CommandOutcome.VersionConflict));
        }

        switch (current.State)
        {
            case RecordState.Live:
                return (null, new CommandResult(CommandOutcome.Unchanged, current.GuessesRemaining, current.AttemptSerial));
            case RecordState.Pending:
                var moved = RegistrationHistory.Append(MoveReceipt.Decode(command.Receipt).History, current.Registrations);
                var live = current with { State = RecordState.Live, History = moved.Count == 0 ? null : RegistrationHistory.Encode(moved) };
                return (live, new CommandResult(CommandOutcome.Activated, live.GuessesRemaining, live.AttemptSerial));
            default:
                return (null, new CommandResult(current.State == RecordState.Destroyed ? CommandOutcome.Destroyed : CommandOutcome.NotRegistered));
        }
    }

    /// <summary>A delete names the version it was decided on, so a replayed delete cannot remove a later registration.</summary>
    private static (StoredRecord?, CommandResult) Delete(StoredRecord? current, DeleteCommand command)
    {
        if (current is not { HoldsRecord: true })
        {
            return (null, new CommandResult(CommandOutcome.NotRegistered));
        }

        if (current.Version != command.Version)
        {
            return (null, new CommandResult(CommandOutcome.VersionConflict, current.GuessesRemaining, current.AttemptSerial));
        }

        return (current! with { State = RecordState.Deleted, GuessesUsed = 0, SealedRecord = null }, new CommandResult(CommandOutcome.Deleted));
    }

    private static (StoredRecord?, CommandResult) Destroy(StoredRecord current) =>
        (current with { State = RecordState.Destroyed, SealedRecord = null }, new CommandResult(CommandOutcome.Destroyed, 0, current.AttemptSerial));

    /// <summary>Refuses a command aimed at a record that is not live, or at another version of it.</summary>
    private static CommandResult? NotActionable(StoredRecord? current, long version) => current switch
    {
        null or { State: RecordState.Deleted } => new CommandResult(CommandOutcome.NotRegistered),
        { State: RecordState.Destroyed } => new CommandResult(CommandOutcome.Destroyed),
        { State: RecordState.Pending } => new CommandResult(CommandOutcome.MovePending),
        _ when current.Version != version => new CommandResult(CommandOutcome.VersionConflict, current.GuessesRemaining, current.AttemptSerial),
        _ => null,
    };
}
