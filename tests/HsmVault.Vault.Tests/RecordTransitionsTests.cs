using HsmVault.Vault.State;

namespace HsmVault.Vault.Tests;

/// <summary>The attempt-counting rule and the registration rules, as the pure function apply runs.</summary>
public sealed class RecordTransitionsTests
{
    private static readonly byte[] AttemptId = new byte[VaultCommandCodec.AttemptIdBytes];

    private static byte[] Nonce() => System.Security.Cryptography.RandomNumberGenerator.GetBytes(UserIdentity.RegistrationNonceBytes);

    private static readonly UserIdentity Alice = new("tenant", "alice");
    private static readonly byte[] Blob = [1, 2, 3];

    [Fact]
    public void Register_NoRow_CreatesLiveVersionOneWithFullCount()
    {
        var (next, result) = RecordTransitions.Apply(null, new RegisterCommand(Alice, 0, 10, Blob, Replace: false, Nonce()));

        Assert.Equal(CommandOutcome.Registered, result.Outcome);
        Assert.Equal(10, result.GuessesRemaining);
        Assert.NotNull(next);
        Assert.Equal(1, next.Version);
        Assert.Equal(RecordState.Live, next.State);
        Assert.Equal(0, next.GuessesUsed);
        Assert.Equal(Blob, next.SealedRecord);
    }

    [Fact]
    public void ChargeGuess_CountsDownToZero_ThenNextChargeDestroys()
    {
        var record = Live(limit: 3);
        for (var expected = 2; expected >= 0; expected--)
        {
            (record, var result) = Step(record, new ChargeGuessCommand(Alice, 1, record.AttemptSerial, AttemptId));
            AssertResult(CommandOutcome.Charged, expected, result);
            Assert.Equal(RecordState.Live, record.State);
        }

        var (destroyed, final) = RecordTransitions.Apply(record, new ChargeGuessCommand(Alice, 1, record.AttemptSerial, AttemptId));

        Assert.Equal(CommandOutcome.Destroyed, final.Outcome);
        Assert.NotNull(destroyed);
        Assert.Equal(RecordState.Destroyed, destroyed.State);
        Assert.Null(destroyed.SealedRecord);
        Assert.Equal(1, destroyed.Version);
    }

    [Fact]
    public void DuplicateOfTheLastGuessCharge_ChangesNothing_TheNextAttemptDestroys()
    {
        // A member that lost the answer to its charge of the last guess proposes it again: the
        // copy must leave the record as the first left it, so the probe finds the charge and the
        // caller gets its KE2, and only a new attempt (on the current serial) destroys.
        var (record, _) = Step(Live(limit: 1), new ChargeGuessCommand(Alice, 1, 0, AttemptId));

        var (unchanged, duplicate) = RecordTransitions.Apply(record, new ChargeGuessCommand(Alice, 1, 0, AttemptId));

        Assert.Null(unchanged);
        AssertResult(CommandOutcome.VersionConflict, 0, duplicate);
        Assert.Equal(0, RecentCharges.RemainingAfter(record.RecentCharges, AttemptId));
        var (destroyed, next) = RecordTransitions.Apply(record, new ChargeGuessCommand(Alice, 1, record.AttemptSerial, AttemptId));
        Assert.Equal(CommandOutcome.Destroyed, next.Outcome);
        Assert.Equal(RecordState.Destroyed, destroyed!.State);
    }

    [Fact]
    public void ResetGuesses_AfterCharges_RestoresFullCount()
    {
        var record = Live(limit: 5) with { GuessesUsed = 4, AttemptSerial = 4 };

        var (next, result) = RecordTransitions.Apply(record, new ResetGuessesCommand(Alice, 1, 4));

        AssertResult(CommandOutcome.Reset, 5, result);
        Assert.Equal(0, next!.GuessesUsed);
        Assert.Equal(RecordState.Live, next.State);
    }

    [Fact]
    public void DestroyIfExhausted_BelowLimit_ChangesNothing()
    {
        var record = Live(limit: 5) with { GuessesUsed = 4 };

        var (next, result) = RecordTransitions.Apply(record, new DestroyIfExhaustedCommand(Alice, 1));

        Assert.Null(next);
        AssertResult(CommandOutcome.Unchanged, 1, result);
    }

    [Fact]
    public void DestroyIfExhausted_AtLimit_Destroys()
    {
        var record = Live(limit: 5) with { GuessesUsed = 5 };

        var (next, result) = RecordTransitions.Apply(record, new DestroyIfExhaustedCommand(Alice, 1));

        Assert.Equal(CommandOutcome.Destroyed, result.Outcome);
        Assert.Equal(RecordState.Destroyed, next!.State);
        Assert.Null(next.SealedRecord);
    }

    [Fact]
    public void Register_OverLiveRecordWithoutReplace_IsRefusedAndChangesNothing()
    {
        var record = Live(limit: 5) with { GuessesUsed = 2 };

        var (next, result) = RecordTransitions.Apply(record, new RegisterCommand(Alice, 1, 7, [9], Replace: false, Nonce()));

        Assert.Null(next);
        AssertResult(CommandOutcome.AlreadyRegistered, 3, result);
    }

    [Fact]
    public void Register_OverLiveRecordWithReplace_BumpsVersionAndResetsCount()
    {
        var record = Live(limit: 5) with { GuessesUsed = 4 };

        var (next, result) = RecordTransitions.Apply(record, new RegisterCommand(Alice, 1, 7, [9], Replace: true, Nonce()));

        AssertResult(CommandOutcome.Replaced, 7, result);
        Assert.Equal(2, next!.Version);
        Assert.Equal(0, next.GuessesUsed);
        Assert.Equal(7, next.GuessLimit);
        Assert.Equal([9], next.SealedRecord);
    }

    [Theory]
    [InlineData(RecordState.Deleted)]
    [InlineData(RecordState.Destroyed)]
    public void Register_OverTombstone_RegistersFreshWithNextVersion(RecordState state)
    {
        var tombstone = new StoredRecord(Alice, 4, state, 5, 5, null);

        var (next, result) = RecordTransitions.Apply(tombstone, new RegisterCommand(Alice, 4, 3, Blob, Replace: false, Nonce()));

        AssertResult(CommandOutcome.Registered, 3, result);
        Assert.Equal(5, next!.Version);
        Assert.Equal(RecordState.Live, next.State);
        Assert.Equal(0, next.GuessesUsed);
    }

    [Fact]
    public void Register_WithStaleExpectedVersion_IsVersionConflict()
    {
        var record = Live(limit: 5) with { Version = 3 };

        Assert.Equal(new CommandResult(CommandOutcome.VersionConflict), RecordTransitions.Apply(record, new RegisterCommand(Alice, 2, 5, Blob, true, Nonce())).Result);
        Assert.Null(RecordTransitions.Apply(record, new RegisterCommand(Alice, 2, 5, Blob, true, Nonce())).Next);
        Assert.Equal(CommandOutcome.VersionConflict, RecordTransitions.Apply(null, new RegisterCommand(Alice, 1, 5, Blob, false, Nonce())).Result.Outcome);
    }

    [Fact]
    public void VersionedCommands_OnAnotherVersion_AreVersionConflictsAndChangeNothing()
    {
        var record = Live(limit: 5) with { Version = 2, GuessesUsed = 5 };
        RecordCommand[] commands = [new ChargeGuessCommand(Alice, 1, record.AttemptSerial, AttemptId), new ResetGuessesCommand(Alice, 1, record?.AttemptSerial ?? 0), new DestroyIfExhaustedCommand(Alice, 3)];

        foreach (var command in commands)
        {
            var (next, result) = RecordTransitions.Apply(record, command);
            Assert.Null(next);
            Assert.Equal(CommandOutcome.VersionConflict, result.Outcome);
        }
    }

    [Fact]
    public void Delete_LiveRecord_LeavesTombstoneThatKeepsVersion()
    {
        var record = Live(limit: 5) with { Version = 6, GuessesUsed = 3 };

        var (next, result) = RecordTransitions.Apply(record, new DeleteCommand(Alice, record?.Version ?? 0));

        Assert.Equal(CommandOutcome.Deleted, result.Outcome);
        Assert.Equal(RecordState.Deleted, next!.State);
        Assert.Equal(6, next.Version);
        Assert.Null(next.SealedRecord);
    }

    [Fact]
    public void Delete_NothingLive_IsNotRegistered()
    {
        Assert.Equal(CommandOutcome.NotRegistered, RecordTransitions.Apply(null, new DeleteCommand(Alice, 0)).Result.Outcome);
        var destroyed = new StoredRecord(Alice, 2, RecordState.Destroyed, 5, 5, null);
        var (next, result) = RecordTransitions.Apply(destroyed, new DeleteCommand(Alice, destroyed.Version));
        Assert.Null(next);
        Assert.Equal(CommandOutcome.NotRegistered, result.Outcome);
    }

    [Theory]
    [InlineData(RecordState.Destroyed, CommandOutcome.Destroyed)]
    [InlineData(RecordState.Deleted, CommandOutcome.NotRegistered)]
    public void VersionedCommands_OnTombstone_AnswerWithoutChange(RecordState state, CommandOutcome expected)
    {
        var tombstone = new StoredRecord(Alice, 2, state, 5, 5, null);
        RecordCommand[] commands = [new ChargeGuessCommand(Alice, 2, tombstone.AttemptSerial, AttemptId), new ResetGuessesCommand(Alice, 2, tombstone.AttemptSerial), new DestroyIfExhaustedCommand(Alice, 2)];

        foreach (var command in commands)
        {
            var (next, result) = RecordTransitions.Apply(tombstone, command);
            Assert.Null(next);
            Assert.Equal(expected, result.Outcome);
        }
    }

    [Fact]
    public void VersionedCommands_NoRow_AreNotRegistered()
    {
        RecordCommand[] commands = [new ChargeGuessCommand(Alice, 0, 0, AttemptId), new ResetGuessesCommand(Alice, 0, 0), new DestroyIfExhaustedCommand(Alice, 0)];
        foreach (var command in commands)
        {
            var (next, result) = RecordTransitions.Apply(null, command);
            Assert.Null(next);
            Assert.Equal(CommandOutcome.NotRegistered, result.Outcome);
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(42)]
    [InlineData(1234)]
    [InlineData(99999)]
    public void RandomCommandSequence_NeverChargesMoreThanLimitBetweenResets(int seed)
    {
        var random = new Random(seed);
        StoredRecord? record = null;
        var chargedSinceReset = 0;
        var limit = 0;
        var highestVersion = 0L;
        for (var step = 0; step < 5000; step++)
        {
            var current = record?.Version ?? 0;

            // Mostly the version the proposer would read, sometimes a stale or future one.
            var version = random.Next(10) switch
            {
                0 => current - 1,
                1 => current + 1,
                _ => current,
            };
            RecordCommand command = random.Next(20) switch
            {
                0 => new RegisterCommand(Alice, version, random.Next(1, 6), Blob, Replace: random.Next(2) == 0, Nonce()),
                1 => new DeleteCommand(Alice, version),
                2 => new ResetGuessesCommand(Alice, version, record?.AttemptSerial ?? 0),
                < 6 => new DestroyIfExhaustedCommand(Alice, version),
                _ => new ChargeGuessCommand(Alice, version, record?.AttemptSerial ?? 0, AttemptId),
            };

            var (next, result) = RecordTransitions.Apply(record, command);
            switch (result.Outcome)
            {
                case CommandOutcome.Registered or CommandOutcome.Replaced:
                    chargedSinceReset = 0;
                    limit = ((RegisterCommand)command).GuessLimit;
                    break;
                case CommandOutcome.Reset:
                    chargedSinceReset = 0;
                    break;
                case CommandOutcome.Charged:
                    chargedSinceReset++;
                    Assert.True(chargedSinceReset <= limit, $"seed {seed} step {step}: {chargedSinceReset} guesses charged with a limit of {limit}");
                    Assert.Equal(limit - chargedSinceReset, result.GuessesRemaining);
                    break;
                default:
                    break;
            }

            if (next is null)
            {
                // Refusals change nothing.
                Assert.Contains(result.Outcome, new[] { CommandOutcome.AlreadyRegistered, CommandOutcome.NotRegistered, CommandOutcome.VersionConflict, CommandOutcome.Unchanged, CommandOutcome.Destroyed });
            }
            else
            {
                // Versions never go back, and a record leaves Destroyed only by a new registration.
                Assert.True(next.Version >= highestVersion);
                highestVersion = next.Version;
                if (record?.State == RecordState.Destroyed)
                {
                    Assert.IsType<RegisterCommand>(command);
                }

                Assert.Equal(next.State == RecordState.Live, next.SealedRecord is not null);
                record = next;
            }
        }
    }

    private static StoredRecord Live(int limit) => new(Alice, 1, RecordState.Live, limit, 0, Blob);

    private static (StoredRecord Next, CommandResult Result) Step(StoredRecord record, RecordCommand command)
    {
        var (next, result) = RecordTransitions.Apply(record, command);
        return (next ?? record, result);
    }

    private static void AssertResult(CommandOutcome outcome, int guessesRemaining, CommandResult actual) =>
        Assert.Equal((outcome, guessesRemaining), (actual.Outcome, actual.GuessesRemaining));
}
