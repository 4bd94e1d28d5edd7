using System.Collections.Immutable;

namespace HsmVault.Testing.Linearizability;

/// <summary>
/// What the vault holds for one user, as far as a client can observe it. Immutable with value
/// equality, so the checker can memoize it.
/// </summary>
/// <param name="Registered">Whether a live record exists.</param>
/// <param name="Version">How many registrations the user has made; bumps on every successful Register.</param>
/// <param name="GuessesUsed">Guesses charged since the last registration or successful recovery.</param>
/// <param name="Limit">The registration's guess allowance.</param>
/// <param name="Destroyed">Whether the record was destroyed at its limit (then it is not registered).</param>
public sealed record VaultUserState(bool Registered, int Version, int GuessesUsed, int Limit, bool Destroyed)
{
    /// <summary>No record has ever existed.</summary>
    public static VaultUserState Absent { get; } = new(false, 0, 0, 0, false);

    /// <summary>Guesses left before the record is destroyed.</summary>
    public int Remaining => Registered ? Limit - GuessesUsed : 0;

    /// <summary>Charges made on this registration: the serial of the latest attempt.</summary>
    public int AttemptSerial { get; init; }

    /// <summary>
    /// Charged attempts of this registration newer than its last reset, by the session number the
    /// history gave them: the attempt serial each was charged under. A registration or delete
    /// starts with none; a wrong-password finish leaves its session here, so finishing changes no
    /// state a read-only answer would not.
    /// </summary>
    public ImmutableSortedDictionary<int, int> OpenSessions { get; init; } = ImmutableSortedDictionary<int, int>.Empty;

    /// <inheritdoc/>
    public bool Equals(VaultUserState? other) =>
        other is not null
        && (Registered, Version, GuessesUsed, Limit, Destroyed, AttemptSerial)
            == (other.Registered, other.Version, other.GuessesUsed, other.Limit, other.Destroyed, other.AttemptSerial)
        && OpenSessions.SequenceEqual(other.OpenSessions);

    /// <inheritdoc/>
    public override int GetHashCode()
    {
        var hash = HashCode.Combine(Registered, Version, GuessesUsed, Limit, Destroyed, AttemptSerial);
        foreach (var (session, charged) in OpenSessions)
        {
            hash = HashCode.Combine(hash, session, charged);
        }

        return hash;
    }
}

/// <summary>A client request to the vault about its own user (the user is the operation's key).</summary>
public abstract record VaultInput
{
    private VaultInput()
    {
    }

    /// <summary>Register a record with <paramref name="Limit"/> guesses; <paramref name="Replace"/> replaces a live one.</summary>
    public sealed record Register(int Limit, bool Replace) : VaultInput;

    /// <summary>Recovery step 1 (KE1 → KE2): charges one guess before any answer leaves the fleet.</summary>
    /// <param name="Session">
    /// A number, unique in the history, that the finish of this attempt names; 0 when the history
    /// does not pair starts with finishes.
    /// </param>
    public sealed record StartRecovery(int Session = 0) : VaultInput;

    /// <summary>Recovery step 2 (KE3): the client's password was or was not the registered one.</summary>
    /// <param name="CorrectPassword">Whether the KE3 verifies.</param>
    /// <param name="Session">The <see cref="StartRecovery.Session"/> this finishes; 0 when unpaired.</param>
    public sealed record FinishRecovery(bool CorrectPassword, int Session = 0) : VaultInput;

    /// <summary>Delete the record.</summary>
    public sealed record Delete : VaultInput;

    /// <summary>Read the record's status.</summary>
    public sealed record Status : VaultInput;
}

/// <summary>The vault's answer to a <see cref="VaultInput"/>.</summary>
public abstract record VaultOutput
{
    private VaultOutput()
    {
    }

    /// <summary>Register succeeded.</summary>
    public sealed record Registered : VaultOutput;

    /// <summary>Register without replace found a live record.</summary>
    public sealed record AlreadyRegistered : VaultOutput;

    /// <summary>A guess was charged; <paramref name="Remaining"/> guesses are left.</summary>
    public sealed record Charged(int Remaining) : VaultOutput;

    /// <summary>The record is (now) destroyed.</summary>
    public sealed record Destroyed : VaultOutput;

    /// <summary>No record: the fleet answers with a fake KE2 and changes nothing.</summary>
    public sealed record NotRegistered : VaultOutput;

    /// <summary>The password was right; the counter is reset.</summary>
    public sealed record Success : VaultOutput;

    /// <summary>The password was wrong; <paramref name="Remaining"/> guesses are left.</summary>
    public sealed record WrongPassword(int Remaining) : VaultOutput;

    /// <summary>The recovery session is unknown, expired or belongs to a replaced record; nothing changes.</summary>
    public sealed record SessionInvalid : VaultOutput;

    /// <summary>The record was deleted.</summary>
    public sealed record Deleted : VaultOutput;

    /// <summary>There was no record to delete.</summary>
    public sealed record NotFound : VaultOutput;

    /// <summary>The record's status.</summary>
    public sealed record Status(bool IsRegistered, int Remaining, bool IsDestroyed) : VaultOutput;
}

/// <summary>
/// The sequential specification of the vault, one user per key: registration, the two-step
/// recovery with a guess budget charged up front, delete and status.
/// </summary>
/// <remarks>
/// A guess is charged by StartRecovery, before the fleet answers (DESIGN.md: a KE2 never
/// leaves a member before its attempt is durable on a majority), so a lost or repeated charge
/// shows up as a Charged answer no order can explain. At the limit the next StartRecovery, or
/// a wrong FinishRecovery, destroys the record for good. A correct password resets the count
/// once per attempt, and not at all for an attempt older than the one that last reset it
/// (RecordTransitions' rule): when starts and finishes are paired by session number the model
/// follows that rule exactly; an unpaired correct finish always resets.
/// </remarks>
public sealed class VaultModel : IModel<VaultUserState, VaultInput, VaultOutput>
{
    private static readonly VaultOutput.Registered RegisteredAnswer = new();
    private static readonly VaultOutput.AlreadyRegistered AlreadyRegisteredAnswer = new();
    private static readonly VaultOutput.Destroyed DestroyedAnswer = new();
    private static readonly VaultOutput.NotRegistered NotRegisteredAnswer = new();
    private static readonly VaultOutput.Success SuccessAnswer = new();
    private static readonly VaultOutput.SessionInvalid SessionInvalidAnswer = new();
    private static readonly VaultOutput.Deleted DeletedAnswer = new();
    private static readonly VaultOutput.NotFound NotFoundAnswer = new();

    /// <inheritdoc/>
    public VaultUserState Init() => VaultUserState.Absent;

    /// <inheritdoc/>
    public (bool Ok, VaultUserState State) Step(VaultUserState state, VaultInput input, VaultOutput output)
    {
        ArgumentNullException.ThrowIfNull(state);

        // A finish can always fail as SessionInvalid (expired session, or the record was replaced
        // or deleted since its start), and then changes nothing.
        if (input is VaultInput.FinishRecovery && output is VaultOutput.SessionInvalid)
        {
            return (true, state);
        }

        var (expected, next) = Apply(state, input);
        return expected is not null && expected == output ? (true, next) : (false, state);
    }

    /// <inheritdoc/>
    public IReadOnlyList<VaultUserState> StepUnknown(VaultUserState state, VaultInput input)
    {
        ArgumentNullException.ThrowIfNull(state);
        var (expected, next) = Apply(state, input);
        return expected is null ? [] : [next];
    }

    /// <summary>
    /// Answers that never change the record: a status, a refused registration, a fake or refused
    /// recovery step, a wrong password with guesses left, a delete of nothing.
    /// </summary>
    public bool IsReadOnly(VaultInput input, VaultOutput output) => output is VaultOutput.Status
        or VaultOutput.AlreadyRegistered
        or VaultOutput.NotRegistered
        or VaultOutput.SessionInvalid
        or VaultOutput.WrongPassword
        or VaultOutput.NotFound;

    /// <summary>
    /// Users are independent: one sub-history per operation key. Session numbers no correct
    /// finish names are dropped from the inputs (see remarks).
    /// </summary>
    /// <remarks>
    /// The state keeps a session only for a correct finish to look up; a start whose session no
    /// correct finish in the history names (its answer was lost, or its password was wrong) and a
    /// wrong finish (which never reads its session) behave exactly as their unpaired forms, so
    /// they are checked as such. That keeps useless sessions out of the states the checker
    /// memoizes, and makes such operations equal inputs, which it places in call order when their
    /// answers were lost rather than trying every subset (a killed member leaves many).
    /// </remarks>
    public IReadOnlyList<IReadOnlyList<Operation<VaultInput, VaultOutput>>> Partition(
        IReadOnlyList<Operation<VaultInput, VaultOutput>> history)
    {
        ArgumentNullException.ThrowIfNull(history);
        return [.. history.GroupBy(op => op.Key, StringComparer.Ordinal).Select(g => WithoutUnreadSessions([.. g]))];
    }

    private static IReadOnlyList<Operation<VaultInput, VaultOutput>> WithoutUnreadSessions(IReadOnlyList<Operation<VaultInput, VaultOutput>> ops)
    {
        var read = ops.Select(op => op.Input).OfType<VaultInput.FinishRecovery>().Where(f => f.CorrectPassword && f.Session != 0).Select(f => f.Session).ToHashSet();
        return [.. ops.Select(op => op.Input switch
        {
            VaultInput.StartRecovery { Session: not 0 } start when !read.Contains(start.Session) => op with { Input = new VaultInput.StartRecovery() },
            VaultInput.FinishRecovery { CorrectPassword: false, Session: not 0 } => op with { Input = new VaultInput.FinishRecovery(false) },
            _ => op,
        })];
    }

    /// <summary>
    /// The answer and next state of <paramref name="input"/> on <paramref name="state"/>; a null
    /// answer for an input the vault rejects without effect (an out-of-range limit).
    /// </summary>
    public static (VaultOutput? Output, VaultUserState State) Apply(VaultUserState state, VaultInput input)
    {
        ArgumentNullException.ThrowIfNull(state);
        var destroyed = state with { Registered = false, GuessesUsed = 0, Limit = 0, Destroyed = true };
        if (input is VaultInput.FinishRecovery { CorrectPassword: true, Session: not 0 } paired)
        {
            return CorrectPairedFinish(state, state.OpenSessions.GetValueOrDefault(paired.Session));
        }

        switch (input)
        {
            case VaultInput.Register { Limit: < 1 }:
                return (null, state);
            case VaultInput.Register { Replace: false } when state.Registered:
                return (AlreadyRegisteredAnswer, state);
            case VaultInput.Register register:
                // Over an absent or destroyed record no replace is needed; either way guesses start at 0.
                return (RegisteredAnswer, new VaultUserState(true, state.Version + 1, 0, register.Limit, false));
            case VaultInput.StartRecovery when state.Destroyed:
                return (DestroyedAnswer, state);
            case VaultInput.StartRecovery when !state.Registered:
                return (NotRegisteredAnswer, state);
            case VaultInput.StartRecovery when state.GuessesUsed >= state.Limit:
                return (DestroyedAnswer, destroyed);
            case VaultInput.StartRecovery start:
                var serial = state.AttemptSerial + 1;
                var charged = state with
                {
                    GuessesUsed = state.GuessesUsed + 1,
                    AttemptSerial = serial,
                    OpenSessions = start.Session == 0 ? state.OpenSessions : state.OpenSessions.SetItem(start.Session, serial),
                };
                return (new VaultOutput.Charged(state.Limit - state.GuessesUsed - 1), charged);
            case VaultInput.FinishRecovery when state.Destroyed:
                return (DestroyedAnswer, state);
            case VaultInput.FinishRecovery when !state.Registered:
                return (SessionInvalidAnswer, state);
            case VaultInput.FinishRecovery { CorrectPassword: true }:
                return (SuccessAnswer, state with { GuessesUsed = 0 });
            case VaultInput.FinishRecovery when state.GuessesUsed >= state.Limit:
                return (DestroyedAnswer, destroyed);
            case VaultInput.FinishRecovery:
                return (new VaultOutput.WrongPassword(state.Limit - state.GuessesUsed), state);
            case VaultInput.Delete when state.Registered:
                return (DeletedAnswer, new VaultUserState(false, state.Version, 0, 0, false));
            case VaultInput.Delete:
                return (NotFoundAnswer, state);
            case VaultInput.Status:
                return (new VaultOutput.Status(state.Registered, state.Remaining, state.Destroyed), state);
            default:
                throw new ArgumentException($"Unknown vault input {input}.", nameof(input));
        }
    }

    /// <summary>
    /// A correct finish paired with its start: it resets the count only if its attempt is still
    /// open, i.e. charged on this registration after its last reset.
    /// </summary>
    /// <remarks>
    /// A session that is not open (serial 0) was charged at or before the last reset, or on a
    /// registration since replaced or deleted: its correct finish changes nothing (the vault may
    /// also refuse it as a stale session, which Step always allows). Its start was placed before
    /// it, since the finish is invoked after the start returned.
    /// </remarks>
    private static (VaultOutput? Output, VaultUserState State) CorrectPairedFinish(VaultUserState state, int chargedSerial)
    {
        if (state.Destroyed)
        {
            return (DestroyedAnswer, state);
        }

        if (!state.Registered)
        {
            return (SessionInvalidAnswer, state);
        }

        if (chargedSerial == 0)
        {
            return (SuccessAnswer, state);
        }

        // The sessions this reset makes moot are forgotten, so the state stays small and the
        // checker's memoization effective.
        var stillOpen = state.OpenSessions.RemoveRange(state.OpenSessions.Where(s => s.Value <= chargedSerial).Select(s => s.Key));
        return (SuccessAnswer, state with { GuessesUsed = 0, OpenSessions = stillOpen });
    }
}
