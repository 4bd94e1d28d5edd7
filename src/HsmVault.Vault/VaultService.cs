using System.Text;
using HsmVault.Crypto;
using HsmVault.Crypto.Opaque;
using HsmVault.Hsm;
using HsmVault.Vault.Internal;
using HsmVault.Vault.Records;
using HsmVault.Vault.Recovery;
using HsmVault.Vault.State;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace HsmVault.Vault;

/// <summary>Answer to StartRegistration: the OPAQUE response and the ticket FinishRegistration needs.</summary>
public sealed record RegistrationStartResult(byte[] RegistrationResponse, byte[] RegistrationTicket);

/// <summary>Answer to a finished registration.</summary>
public sealed record RegistrationResult(int GuessLimit, bool Replaced);

/// <summary>Answer to StartRecovery: sent only after the guess is committed.</summary>
public sealed record RecoveryStartResult(byte[] Ke2, byte[] SessionId, int GuessesRemaining);

/// <summary>How a recovery ended.</summary>
public enum RecoveryOutcome
{
    /// <summary>KE3 verified; the count is reset and the secret released.</summary>
    Success,

    /// <summary>KE3 did not verify; the guess stays charged.</summary>
    WrongPassword,

    /// <summary>That was the last allowed guess; the record is gone.</summary>
    RecordDestroyed,
}

/// <summary>Answer to FinishRecovery.</summary>
/// <param name="Outcome">How it ended.</param>
/// <param name="GuessesRemaining">Guesses left.</param>
/// <param name="ReleasedSecret">On success: the stored ciphertext sealed under the session key.</param>
public sealed record RecoveryFinishResult(RecoveryOutcome Outcome, int GuessesRemaining, byte[]? ReleasedSecret);

/// <summary>Answer to GetStatus.</summary>
public sealed record RecordStatus(bool Registered, int GuessLimit, int GuessesRemaining, bool Destroyed);

/// <summary>
/// The vault's operations for one authenticated caller. Validates every input before it
/// touches state, does the token and OPAQUE work on this member, and writes only through
/// <see cref="IVaultLog"/>. Knows nothing of gRPC: refusals are <see cref="VaultException"/>s.
/// </summary>
public sealed partial class VaultService : IDisposable
{
    /// <summary>How often a write decided on a record that changed underneath it is retried.</summary>
    private const int MaxVersionConflictRetries = 3;

    private readonly VaultStateMachine _state;
    private readonly IVaultLog _log;
    private readonly OpaqueServer _opaque;
    private readonly RecordSealer _sealer;
    private readonly RecoverySessions _sessions;
    private readonly RegistrationTickets _tickets;
    private readonly VaultOptions _options;
    private readonly ILogger _logger;

    /// <summary>Creates the service over a token, the local state and the replicated log.</summary>
    public VaultService(
        IVaultToken token,
        ServerKeyPair serverKeyPair,
        VaultStateMachine state,
        IVaultLog log,
        IOptions<VaultOptions> options,
        TimeProvider time,
        ILogger<VaultService> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _state = state;
        _log = log;
        _options = options.Value;
        _logger = logger;
        _opaque = new OpaqueServer(OpaqueConfigurationFor(_options), new TokenOprfSeed(token), serverKeyPair);
        _sealer = new RecordSealer(token, _options.FleetId);
        _sessions = new RecoverySessions(time, _options.MaxRecoverySessions, _options.RecoverySessionTimeout);
        _tickets = new RegistrationTickets(token, _options.FleetId, time, _options.RegistrationTicketLifetime);
    }

    /// <summary>The OPAQUE configuration both sides use; the KSF only ever runs on clients.</summary>
    public static OpaqueConfiguration OpaqueConfigurationFor(VaultOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new OpaqueConfiguration(
            Encoding.UTF8.GetBytes(options.OpaqueContext),
            new Argon2idKsf(new Argon2idParameters(options.Argon2MemoryKib, options.Argon2Iterations, options.Argon2Parallelism)));
    }

    /// <summary>
    /// OPAQUE registration, first message. Stateless: evaluates the OPRF under a key of a
    /// fresh registration nonce, which travels to FinishRegistration in a sealed ticket.
    /// </summary>
    public RegistrationStartResult StartRegistration(UserIdentity user, byte[] registrationRequest)
    {
        ArgumentNullException.ThrowIfNull(user);
        ArgumentNullException.ThrowIfNull(registrationRequest);
        RequireLength(registrationRequest, OpaqueSizes.RegistrationRequest, "registration_request");
        return OnToken(() =>
        {
            var ticket = _tickets.Issue(user);
            var credentialIdentifier = user.CredentialIdentifier(ticket.Nonce);
            var response = Opaque(() => _opaque.CreateRegistrationResponse(registrationRequest, credentialIdentifier), "registration_request");
            return new RegistrationStartResult(response, ticket.Sealed);
        });
    }

    /// <summary>OPAQUE registration, final message: seals and stores the record.</summary>
    public async Task<RegistrationResult> FinishRegistrationAsync(
        UserIdentity user,
        byte[] registrationTicket,
        byte[] registrationRecord,
        byte[] encryptedSecret,
        int guessLimit,
        bool replaceExisting,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(user);
        ArgumentNullException.ThrowIfNull(registrationTicket);
        ArgumentNullException.ThrowIfNull(registrationRecord);
        ArgumentNullException.ThrowIfNull(encryptedSecret);
        RequireLength(registrationRecord, OpaqueSizes.RegistrationRecord, "registration_record");
        Opaque(() => OpaqueServer.ValidateRegistrationRecord(registrationRecord), "registration_record");
        if (encryptedSecret.Length is 0 or > RecordLimits.MaxEncryptedSecretBytes)
        {
            throw new VaultException(VaultError.InvalidArgument,
                $"encrypted_secret must be 1 to {RecordLimits.MaxEncryptedSecretBytes} bytes; got {encryptedSecret.Length}");
        }

        var limit = guessLimit == 0 ? _options.DefaultGuessLimit : guessLimit;
        if (limit is < RecordLimits.MinGuessLimit or > RecordLimits.MaxGuessLimit)
        {
            throw new VaultException(VaultError.InvalidArgument,
                $"guess_limit must be {RecordLimits.MinGuessLimit} to {RecordLimits.MaxGuessLimit}, or 0 for the default of {_options.DefaultGuessLimit}; got {guessLimit}");
        }

        var nonce = OnToken(() => _tickets.Open(user, registrationTicket));
        var contents = new RecordContents(nonce, registrationRecord, limit, encryptedSecret);
        for (var attempt = 0; ; attempt++)
        {
            await _log.ReadBarrierAsync(cancellationToken);
            var current = _state.Read(user);
            if (current?.State == RecordState.Live && !replaceExisting)
            {
                throw AlreadyRegistered(user);
            }

            var expectedVersion = current?.Version ?? 0;
            var sealedRecord = OnToken(() => _sealer.Seal(user, expectedVersion + 1, contents));
            var result = await _log.SubmitAsync(new RegisterCommand(user, expectedVersion, limit, sealedRecord, replaceExisting), cancellationToken);
            switch (result.Outcome)
            {
                case CommandOutcome.Registered:
                    Log.Registered(_logger, user.Tenant, user.UserId, limit);
                    return new RegistrationResult(limit, Replaced: false);
                case CommandOutcome.Replaced:
                    Log.Replaced(_logger, user.Tenant, user.UserId, limit);
                    return new RegistrationResult(limit, Replaced: true);
                case CommandOutcome.AlreadyRegistered:
                    throw AlreadyRegistered(user);
                case CommandOutcome.VersionConflict when attempt < MaxVersionConflictRetries:
                    continue;
                default:
                    throw Conflict(user);
            }
        }
    }

    /// <summary>
    /// OPAQUE login, first message. The guess is committed by the fleet before KE2 is
    /// returned; an unknown user gets a fake-record KE2 that looks the same.
    /// </summary>
    public async Task<RecoveryStartResult> StartRecoveryAsync(UserIdentity user, byte[] ke1, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(user);
        ArgumentNullException.ThrowIfNull(ke1);
        RequireLength(ke1, OpaqueSizes.Ke1, "ke1");
        for (var attempt = 0; ; attempt++)
        {
            _sessions.EnsureRoom();
            await _log.ReadBarrierAsync(cancellationToken);
            var current = _state.Read(user);
            if (current is null or { State: RecordState.Deleted })
            {
                return StartFakeRecovery(user, ke1);
            }

            if (current.State == RecordState.Destroyed)
            {
                throw Destroyed(user);
            }

            var contents = OnToken(() => _sealer.Unseal(user, current.Version, current.SealedRecord!));
            if (contents.GuessLimit != current.GuessLimit)
            {
                throw new VaultException(VaultError.DataLoss, $"the stored record of {user} disagrees with its guess limit; it was tampered with");
            }

            // KE2 is computed first so that a malformed KE1 is refused before any guess is
            // charged; it stays in memory until the charge is committed.
            var credentialIdentifier = user.CredentialIdentifier(contents.RegistrationNonce);
            var start = OnToken(() => Opaque(() => _opaque.GenerateKe2(ke1, credentialIdentifier, contents.RegistrationRecord), "ke1"));
            CommandResult charge;
            try
            {
                charge = await _log.SubmitAsync(new ChargeGuessCommand(user, current.Version), cancellationToken);
            }
            catch
            {
                start.State.Dispose();
                throw;
            }

            switch (charge.Outcome)
            {
                case CommandOutcome.Charged:
                    FaultPoints.Hit(FaultPoints.AfterChargeCommitted);
                    Log.GuessCharged(_logger, user.Tenant, user.UserId, charge.GuessesRemaining);
                    var session = new RecoverySession(user, current.Version, start.State, contents.EncryptedSecret, charge.GuessesRemaining, _sessions.NewExpiry());
                    return new RecoveryStartResult(start.Ke2, _sessions.Add(session), charge.GuessesRemaining);
                case CommandOutcome.Destroyed:
                    start.State.Dispose();
                    Log.RecordDestroyed(_logger, user.Tenant, user.UserId);
                    throw Destroyed(user);
                case CommandOutcome.NotRegistered:
                    start.State.Dispose();
                    return StartFakeRecovery(user, ke1);
                case CommandOutcome.VersionConflict when attempt < MaxVersionConflictRetries:
                    start.State.Dispose();
                    continue;
                default:
                    start.State.Dispose();
                    throw Conflict(user);
            }
        }
    }

    /// <summary>OPAQUE login, final message: checks KE3, then resets the count and releases the secret, or keeps the guess charged.</summary>
    public async Task<RecoveryFinishResult> FinishRecoveryAsync(UserIdentity user, byte[] sessionId, byte[] ke3, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(user);
        ArgumentNullException.ThrowIfNull(sessionId);
        ArgumentNullException.ThrowIfNull(ke3);
        RequireLength(sessionId, RecoverySessions.SessionIdBytes, "session_id");
        RequireLength(ke3, OpaqueSizes.Ke3, "ke3");
        using var session = _sessions.Take(sessionId, user)
            ?? throw new VaultException(VaultError.FailedPrecondition,
                "no recovery session with this id for the caller on this member: it was already finished, it expired, or it was started on another member; call StartRecovery again")
            {
                Reason = VaultErrorReasons.UnknownSession,
            };

        var sessionKey = OpaqueServer.ServerFinish(session.LoginState, ke3);
        try
        {
            if (sessionKey is null || session.EncryptedSecret is null)
            {
                return await FailedGuessAsync(session, cancellationToken);
            }

            var reset = await _log.SubmitAsync(new ResetGuessesCommand(user, session.Version), cancellationToken);
            switch (reset.Outcome)
            {
                case CommandOutcome.Reset:
                    Log.Recovered(_logger, user.Tenant, user.UserId);
                    return new RecoveryFinishResult(RecoveryOutcome.Success, reset.GuessesRemaining,
                        SecretEnvelopes.SealForRelease(sessionKey, sessionId, session.EncryptedSecret));
                case CommandOutcome.Destroyed:
                    return new RecoveryFinishResult(RecoveryOutcome.RecordDestroyed, 0, null);
                default:
                    throw new VaultException(VaultError.FailedPrecondition,
                        $"the record of {user} was deleted or replaced while this recovery was in flight; start again");
            }
        }
        finally
        {
            if (sessionKey is not null)
            {
                System.Security.Cryptography.CryptographicOperations.ZeroMemory(sessionKey);
            }
        }
    }

    /// <summary>Deletes the caller's record.</summary>
    public async Task DeleteAsync(UserIdentity user, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(user);
        var result = await _log.SubmitAsync(new DeleteCommand(user), cancellationToken);
        if (result.Outcome != CommandOutcome.Deleted)
        {
            throw new VaultException(VaultError.NotFound, $"there is no record for {user} to delete");
        }

        Log.Deleted(_logger, user.Tenant, user.UserId);
    }

    /// <summary>Whether the caller has a record and how many guesses remain.</summary>
    public async Task<RecordStatus> GetStatusAsync(UserIdentity user, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(user);
        await _log.ReadBarrierAsync(cancellationToken);
        var record = _state.Read(user);
        return record?.State switch
        {
            RecordState.Live => new RecordStatus(true, record.GuessLimit, record.GuessesRemaining, Destroyed: false),
            RecordState.Destroyed => new RecordStatus(false, record.GuessLimit, 0, Destroyed: true),
            _ => new RecordStatus(false, 0, 0, Destroyed: false),
        };
    }

    /// <inheritdoc/>
    public void Dispose() => _sessions.Dispose();

    private RecoveryStartResult StartFakeRecovery(UserIdentity user, byte[] ke1)
    {
        var credentialIdentifier = user.FakeCredentialIdentifier();
        // RFC 9807 section 10.9: an unknown user gets a KE2 built from a fake record, and the
        // same guesses_remaining a fresh record would show, so StartRecovery does not reveal
        // whether the user is registered.
        var start = OnToken(() => Opaque(() => _opaque.GenerateKe2(ke1, credentialIdentifier, registrationRecord: null), "ke1"));
        var remaining = _options.DefaultGuessLimit - 1;
        var session = new RecoverySession(user, version: 0, start.State, encryptedSecret: null, remaining, _sessions.NewExpiry());
        return new RecoveryStartResult(start.Ke2, _sessions.Add(session), remaining);
    }

    private async Task<RecoveryFinishResult> FailedGuessAsync(RecoverySession session, CancellationToken cancellationToken)
    {
        Log.WrongPassword(_logger, session.User.Tenant, session.User.UserId, session.GuessesRemaining);
        if (session.EncryptedSecret is null || session.GuessesRemaining > 0)
        {
            return new RecoveryFinishResult(RecoveryOutcome.WrongPassword, session.GuessesRemaining, null);
        }

        var result = await _log.SubmitAsync(new DestroyIfExhaustedCommand(session.User, session.Version), cancellationToken);
        if (result.Outcome == CommandOutcome.Destroyed)
        {
            Log.RecordDestroyed(_logger, session.User.Tenant, session.User.UserId);
            return new RecoveryFinishResult(RecoveryOutcome.RecordDestroyed, 0, null);
        }

        return new RecoveryFinishResult(RecoveryOutcome.WrongPassword, result.GuessesRemaining, null);
    }

    private static void RequireLength(ReadOnlySpan<byte> value, int length, string field)
    {
        if (value.Length != length)
        {
            throw new VaultException(VaultError.InvalidArgument, $"{field} must be {length} bytes; got {value.Length}");
        }
    }

    /// <summary>Runs OPAQUE work, turning a malformed message into InvalidArgument.</summary>
    private static T Opaque<T>(Func<T> work, string field)
    {
        try
        {
            return work();
        }
        catch (OpaqueProtocolException e)
        {
            throw new VaultException(VaultError.InvalidArgument, $"{field} is not a valid OPAQUE message: {e.Message}", e);
        }
    }

    private static void Opaque(Action work, string field) => Opaque(() => { work(); return 0; }, field);

    /// <summary>Runs token work, turning an unreachable token into Unavailable.</summary>
    private static T OnToken<T>(Func<T> work)
    {
        try
        {
            return work();
        }
        catch (TokenUnavailableException e)
        {
            throw new VaultException(VaultError.Unavailable, "this member's token is unavailable; retry, or use another member", e);
        }
    }

    private static VaultException AlreadyRegistered(UserIdentity user) => new(VaultError.FailedPrecondition,
        $"{user} is already registered; set replace_existing to replace the record (this resets its guess count)")
    {
        Reason = VaultErrorReasons.AlreadyRegistered,
    };

    private static VaultException Destroyed(UserIdentity user) => new(VaultError.FailedPrecondition,
        $"the record of {user} was destroyed after its last allowed guess; it cannot be recovered, register a new one")
    {
        Reason = VaultErrorReasons.RecordDestroyed,
    };

    private static VaultException Conflict(UserIdentity user) => new(VaultError.Aborted,
        $"the record of {user} kept changing during this request; retry");

    private static partial class Log
    {
        [LoggerMessage(4000, LogLevel.Information, "Registered {Tenant}/{UserId} with a limit of {GuessLimit} guesses")]
        public static partial void Registered(ILogger logger, string tenant, string userId, int guessLimit);

        [LoggerMessage(4001, LogLevel.Warning, "AUDIT: replaced the record of {Tenant}/{UserId} (guess count reset, limit {GuessLimit})")]
        public static partial void Replaced(ILogger logger, string tenant, string userId, int guessLimit);

        [LoggerMessage(4002, LogLevel.Information, "Charged a guess for {Tenant}/{UserId}; {GuessesRemaining} remain")]
        public static partial void GuessCharged(ILogger logger, string tenant, string userId, int guessesRemaining);

        [LoggerMessage(4003, LogLevel.Information, "Wrong password for {Tenant}/{UserId}; {GuessesRemaining} guesses remain")]
        public static partial void WrongPassword(ILogger logger, string tenant, string userId, int guessesRemaining);

        [LoggerMessage(4004, LogLevel.Warning, "AUDIT: destroyed the record of {Tenant}/{UserId} after its last allowed guess")]
        public static partial void RecordDestroyed(ILogger logger, string tenant, string userId);

        [LoggerMessage(4005, LogLevel.Information, "Recovered {Tenant}/{UserId}; guess count reset")]
        public static partial void Recovered(ILogger logger, string tenant, string userId);

        [LoggerMessage(4006, LogLevel.Warning, "AUDIT: deleted the record of {Tenant}/{UserId}")]
        public static partial void Deleted(ILogger logger, string tenant, string userId);
    }
}
