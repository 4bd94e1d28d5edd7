using HsmVault.Protocol;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using HsmVault.Crypto;
using HsmVault.Crypto.Opaque;
using HsmVault.Crypto.Signatures;
using HsmVault.Hsm;
using HsmVault.Protocol.Moves;
using HsmVault.Vault.Internal;
using HsmVault.Vault.Moves;
using HsmVault.Vault.Records;
using HsmVault.Vault.Recovery;
using HsmVault.Vault.Signing;
using HsmVault.Vault.State;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RefusalReason = HsmVault.Protocol.V1.RefusalReason;

namespace HsmVault.Vault;

/// <summary>
/// Answer to StartRegistration: the OPAQUE response, the ticket FinishRegistration needs, and the
/// fleet signing key's signature of the response (<see cref="RegistrationResponseSignature"/>).
/// </summary>
public sealed record RegistrationStartResult(byte[] RegistrationResponse, byte[] RegistrationTicket, SigningKeyDescription SignedBy, byte[] ResponseSignature);

/// <summary>Answer to a finished registration.</summary>
/// <param name="GuessLimit">The record's guess limit.</param>
/// <param name="Replaced">Whether a live record was replaced.</param>
/// <param name="RecordVersion">The stored record's version (a move's receipt names it).</param>
public sealed record RegistrationResult(int GuessLimit, bool Replaced, long RecordVersion);

/// <summary>Where a record that leaves this fleet goes: the successor fleet and its pending record's version.</summary>
public sealed record MoveDestination(string FleetId, long RecordVersion);

/// <summary>A move receipt and this fleet's signature of it (<see cref="MoveReceipt"/>).</summary>
public sealed record SignedMoveReceipt(byte[] Receipt, SignatureAlgorithm Algorithm, byte[] Signature);

/// <summary>Answer to an activation: the now live record's limit and history.</summary>
public sealed record ActivationResult(int GuessLimit, IReadOnlyList<RegistrationEvent> History);

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
/// <param name="Registered">A live record exists.</param>
/// <param name="GuessLimit">Its guess limit.</param>
/// <param name="GuessesRemaining">Guesses left.</param>
/// <param name="Destroyed">The record was destroyed after its last allowed guess.</param>
/// <param name="MovePending">The record moved here and waits for its activation.</param>
/// <param name="History">The record's registrations, oldest first.</param>
/// <param name="RecordVersion">The row's version (0: none).</param>
public sealed record RecordStatus(bool Registered, int GuessLimit, int GuessesRemaining, bool Destroyed,
    bool MovePending = false, IReadOnlyList<RegistrationEvent>? History = null, long RecordVersion = 0);

/// <summary>
/// The vault's operations for one authenticated caller. Validates every input before it
/// touches state, does the token and OPAQUE work on this member, and writes only through
/// <see cref="IVaultLog"/>, every command signed by this member's identity key. Knows nothing
/// of gRPC: refusals are <see cref="VaultException"/>s.
/// </summary>
public sealed partial class VaultService : IDisposable
{
    /// <summary>How often a write decided on a record that changed underneath it is retried.</summary>
    private const int MaxVersionConflictRetries = 3;

    /// <summary>Shortest and longest client-chosen request id of a StartRecovery.</summary>
    public const int MinRequestIdBytes = 16;

    /// <inheritdoc cref="MinRequestIdBytes"/>
    public const int MaxRequestIdBytes = 64;

    private static readonly TimeSpan OutcomeProbePause = TimeSpan.FromMilliseconds(100);

    private readonly IVaultToken _token;
    private readonly VaultStateMachine _state;
    private readonly IVaultLog _log;
    private readonly CommandSigner _signer;
    private readonly OpaqueServer _opaque;
    private readonly RecordSealer _sealer;
    private readonly RecoverySessions _sessions;
    private readonly PendingRecoveryStarts _starts;
    private readonly RegistrationTickets _tickets;
    private readonly VaultOptions _options;
    private readonly PredecessorFleets _predecessors;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private ulong _lastPublishedDigest;

    /// <summary>Creates the service over a token, the local state and the replicated log.</summary>
    public VaultService(
        IVaultToken token,
        ServerKeyPair serverKeyPair,
        VaultStateMachine state,
        IVaultLog log,
        CommandSigner signer,
        IOptions<VaultOptions> options,
        PredecessorFleets predecessors,
        TimeProvider time,
        ILogger<VaultService> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _predecessors = predecessors;
        _token = token;
        _state = state;
        _log = log;
        _signer = signer;
        _options = options.Value;
        _time = time;
        _logger = logger;
        _opaque = new OpaqueServer(OpaqueConfigurationFor(_options), new TokenOprfSeed(token), serverKeyPair);
        _sealer = new RecordSealer(token, _options.FleetId);
        _sessions = new RecoverySessions(time, _options.MaxRecoverySessions,
            _options.MaxRecoverySessionsPerTenant ?? Math.Max(1, _options.MaxRecoverySessions / 2),
            _options.MaxRecoverySessionsPerUser, _options.RecoverySessionTimeout);
        _starts = new PendingRecoveryStarts(time, _options.RecoverySessionTimeout);
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
        RequireServing();
        return OnToken(() =>
        {
            var ticket = _tickets.Issue(user);
            var credentialIdentifier = user.CredentialIdentifier(ticket.Nonce);
            var response = Opaque(() => _opaque.CreateRegistrationResponse(registrationRequest, credentialIdentifier), "registration_request");
            // The fleet vouches for the response, so that a client that verified the fleet's bundle
            // registers with this fleet only (RegistrationResponseSignature).
            var signature = _token.Sign(RegistrationResponseSignature.SignedMessage(_options.FleetId, registrationRequest, response));
            return new RegistrationStartResult(response, ticket.Sealed, _token.SigningKey, signature);
        });
    }

    /// <summary>OPAQUE registration, final message: seals and stores the record. Each ticket registers once.</summary>
    /// <param name="user">The caller.</param>
    /// <param name="registrationTicket">From StartRegistration.</param>
    /// <param name="registrationRecord">OPAQUE's RegistrationRecord.</param>
    /// <param name="encryptedSecret">The client-encrypted backup key.</param>
    /// <param name="guessLimit">1..255, or 0 for the default.</param>
    /// <param name="replaceExisting">Whether a live record may be replaced.</param>
    /// <param name="bundleEpoch">The epoch of the validation bundle this member serves (0: none), for the record's history.</param>
    /// <param name="movingFromFleet">The predecessor fleet the record moves from (stored pending), or null.</param>
    /// <param name="cancellationToken">Stops the wait.</param>
    public async Task<RegistrationResult> FinishRegistrationAsync(
        UserIdentity user,
        byte[] registrationTicket,
        byte[] registrationRecord,
        byte[] encryptedSecret,
        uint guessLimit,
        bool replaceExisting,
        ulong bundleEpoch,
        string? movingFromFleet,
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

        if (guessLimit != 0 && !RecordLimits.IsGuessLimit(guessLimit))
        {
            throw new VaultException(VaultError.InvalidArgument,
                $"guess_limit must be {RecordLimits.MinGuessLimit} to {RecordLimits.MaxGuessLimit}, or 0 for the default of {_options.DefaultGuessLimit}; got {guessLimit}");
        }

        var pending = !string.IsNullOrEmpty(movingFromFleet);
        if (pending && !_predecessors.Contains(movingFromFleet!))
        {
            throw MoveRefused(_predecessors.FleetIds.Count == 0
                ? $"moving_from_fleet_id names '{movingFromFleet}', but this fleet takes users over from no fleet (HsmVault:Bundle:Predecessors)"
                : $"moving_from_fleet_id names '{movingFromFleet}', which is not a predecessor of this fleet ({string.Join(", ", _predecessors.FleetIds)})");
        }

        var limit = guessLimit == 0 ? _options.DefaultGuessLimit : (int)guessLimit;
        RequireServing();
        var registered = new RegistrationEvent(_options.FleetId, bundleEpoch, _time.GetUtcNow().ToUnixTimeMilliseconds());
        var nonce = OnToken(() => _tickets.Open(user, registrationTicket));
        var contents = new RecordContents(nonce, registrationRecord, limit, encryptedSecret);
        for (var attempt = 0; ; attempt++)
        {
            await _log.ReadBarrierAsync(cancellationToken);
            var current = _state.Read(user);
            if (current?.State == RecordState.Live && (!replaceExisting || pending))
            {
                throw pending ? AlreadyLiveHere(user) : AlreadyRegistered(user);
            }

            var expectedVersion = current?.Version ?? 0;
            var sealedRecord = OnToken(() => _sealer.Seal(user, expectedVersion + 1, contents));
            var result = await SubmitAsync(
                new RegisterCommand(user, expectedVersion, limit, sealedRecord, replaceExisting, nonce, registered, pending), cancellationToken);
            switch (result.Outcome)
            {
                case CommandOutcome.Registered:
                    return new RegistrationResult(limit, Replaced: false, expectedVersion + 1);
                case CommandOutcome.Replaced:
                    return new RegistrationResult(limit, Replaced: true, expectedVersion + 1);
                case CommandOutcome.AlreadyRegistered:
                    throw pending ? AlreadyLiveHere(user) : AlreadyRegistered(user);
                case CommandOutcome.TicketAlreadyUsed:
                    throw new VaultException(VaultError.FailedPrecondition,
                        "registration_ticket was already used for a registration; each ticket registers once: call StartRegistration again")
                    {
                        Reason = RefusalReason.TicketAlreadyUsed,
                    };
                case CommandOutcome.VersionConflict when attempt < MaxVersionConflictRetries:
                    continue;
                default:
                    throw Unexpected(user, result);
            }
        }
    }

    /// <summary>
    /// OPAQUE login, first message. The guess is committed by the fleet before KE2 is
    /// returned. Idempotent per <paramref name="requestId"/> on this member: a caller whose call
    /// failed with Unavailable (its guess may be charged) asks again with the same request id and
    /// KE1, and gets that guess's KE2, or the one charge made now; never two charges.
    /// </summary>
    /// <param name="user">The caller.</param>
    /// <param name="ke1">KE1.</param>
    /// <param name="requestId">Chosen by the client, <see cref="MinRequestIdBytes"/> to <see cref="MaxRequestIdBytes"/> bytes; empty for none (the call then cannot be resumed).</param>
    /// <param name="cancellationToken">Stops the wait, not the start: a charge in flight still completes and stays fetchable.</param>
    public Task<RecoveryStartResult> StartRecoveryAsync(UserIdentity user, byte[] ke1, byte[] requestId, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(user);
        ArgumentNullException.ThrowIfNull(ke1);
        ArgumentNullException.ThrowIfNull(requestId);
        RequireLength(ke1, OpaqueSizes.Ke1, "ke1");
        Opaque(() => OpaqueServer.ValidateKe1(ke1), "ke1");
        if (requestId.Length != 0 && requestId.Length is < MinRequestIdBytes or > MaxRequestIdBytes)
        {
            throw new VaultException(VaultError.InvalidArgument,
                $"request_id must be {MinRequestIdBytes} to {MaxRequestIdBytes} bytes (a fresh random value per login attempt), or empty; got {requestId.Length}");
        }

        RequireServing();
        var key = requestId.Length == 0 ? RandomNumberGenerator.GetBytes(MinRequestIdBytes) : requestId;
        var start = _starts.GetOrStartAsync(user, key, ke1, () => Task.Run(async () =>
        {
            var proposed = new StrongBox<bool>();
            try
            {
                return await ChargeAndStartAsync(user, ke1, proposed, _stopping.Token);
            }
            catch when (!proposed.Value)
            {
                _starts.Forget(user, key);
                throw;
            }
        }));
        return start.WaitAsync(cancellationToken);
    }

    /// <summary>OPAQUE login, final message: checks KE3, then resets the count and releases the secret, or keeps the guess charged.</summary>
    public async Task<RecoveryFinishResult> FinishRecoveryAsync(UserIdentity user, byte[] sessionId, byte[] ke3, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(user);
        ArgumentNullException.ThrowIfNull(sessionId);
        ArgumentNullException.ThrowIfNull(ke3);
        RequireLength(sessionId, RecoverySessions.SessionIdBytes, "session_id");
        RequireLength(ke3, OpaqueSizes.Ke3, "ke3");
        RequireServing();
        var session = _sessions.Take(sessionId, user)
            ?? throw new VaultException(VaultError.FailedPrecondition,
                "no recovery session with this id for the caller on this member: it was already finished, it expired, or it was started on another member; call StartRecovery again")
            {
                Reason = RefusalReason.UnknownSession,
            };

        var keepSession = false;
        var sessionKey = OpaqueServer.ServerFinish(session.LoginState, ke3);
        try
        {
            if (sessionKey is null)
            {
                return await FailedGuessAsync(session, cancellationToken);
            }

            CommandResult reset;
            try
            {
                reset = await SubmitAsync(new ResetGuessesCommand(user, session.Version, session.AttemptSerial), cancellationToken);
            }
            catch (VaultException e) when (e.Error == VaultError.Unavailable)
            {
                // The password is proven but the reset's fate is unknown. A reset names its attempt,
                // so making it again is harmless: keep the session for the client's retry.
                _sessions.Restore(sessionId, session);
                keepSession = true;
                throw new VaultException(VaultError.Unavailable,
                    "the password was right, but the fleet did not confirm the recovery; call FinishRecovery again with the same session_id and ke3", e);
            }

            switch (reset.Outcome)
            {
                case CommandOutcome.Reset:
                case CommandOutcome.Unchanged:
                    // Unchanged: this attempt (or a later one) already reset the count, e.g. a retried finish.
                    if (_logger.IsEnabled(LogLevel.Debug))
                    {
                        var logged = user.ForLog(_options.LogUserIds);
                        Log.Recovered(_logger, logged);
                    }

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
                CryptographicOperations.ZeroMemory(sessionKey);
            }

            if (!keepSession)
            {
                session.Dispose();
            }
        }
    }

    /// <summary>
    /// Deletes the caller's record (a live or a pending one). With <paramref name="moveTo"/>, the
    /// record is leaving for a successor fleet: once no live record of the caller is left here
    /// (deleted now, or none to delete), this fleet signs a <see cref="MoveReceipt"/> that lets the
    /// successor activate its pending record. The receipt is made again on every such call, so a
    /// lost answer costs nothing.
    /// </summary>
    /// <returns>The signed receipt with <paramref name="moveTo"/>; otherwise null.</returns>
    public async Task<SignedMoveReceipt?> DeleteAsync(UserIdentity user, MoveDestination? moveTo, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(user);
        if (moveTo is not null && (!Identifiers.IsValid(moveTo.FleetId) || moveTo.FleetId == _options.FleetId || moveTo.RecordVersion < 1))
        {
            throw new VaultException(VaultError.InvalidArgument,
                $"move_to needs the successor's fleet id (1 to 64 of A-Z a-z 0-9 . _ -, not this fleet's '{_options.FleetId}') and the pending record's version (1 or more); got '{moveTo.FleetId}' version {moveTo.RecordVersion}");
        }

        RequireServing();
        for (var attempt = 0; ; attempt++)
        {
            await _log.ReadBarrierAsync(cancellationToken);
            var current = _state.Read(user);
            var result = current is { HoldsRecord: true }
                ? await SubmitAsync(new DeleteCommand(user, current.Version), cancellationToken)
                : new CommandResult(CommandOutcome.NotRegistered);
            switch (result.Outcome)
            {
                case CommandOutcome.Deleted when moveTo is not null:
                case CommandOutcome.NotRegistered or CommandOutcome.Destroyed when moveTo is not null:
                    // The delete is applied (or there was nothing live): read the tombstone after it for the history.
                    await _log.ReadBarrierAsync(cancellationToken);
                    var tombstone = _state.Read(user);
                    if (tombstone is { HoldsRecord: true })
                    {
                        // Registered again meanwhile: this fleet would sign that it holds no record while it holds one.
                        if (attempt < MaxVersionConflictRetries)
                        {
                            continue;
                        }

                        throw new VaultException(VaultError.Aborted, $"the record of {user} was registered again while it was being moved; retry");
                    }

                    return SignReceipt(user, moveTo, tombstone);
                case CommandOutcome.Deleted:
                    return null;
                case CommandOutcome.NotRegistered or CommandOutcome.Destroyed:
                    throw new VaultException(VaultError.NotFound, $"there is no record for {user} to delete");
                case CommandOutcome.VersionConflict when attempt < MaxVersionConflictRetries:
                    continue;
                default:
                    throw Unexpected(user, result);
            }
        }
    }

    /// <summary>
    /// Makes the caller's pending record live with its predecessor's signed receipt
    /// (<see cref="PredecessorFleets"/> decides; apply decides again).
    /// </summary>
    public async Task<ActivationResult> ActivateAsync(UserIdentity user, SignedMoveReceipt receipt, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(user);
        ArgumentNullException.ThrowIfNull(receipt);
        MoveReceipt parsed;
        try
        {
            parsed = MoveReceipt.Decode(receipt.Receipt);
        }
        catch (FormatException e)
        {
            throw new VaultException(VaultError.InvalidArgument, $"move_receipt is not a move receipt: {e.Message}");
        }

        if (receipt.Signature.Length != SigningKeyDescription.SignatureBytes || !Enum.IsDefined(receipt.Algorithm))
        {
            throw new VaultException(VaultError.InvalidArgument,
                $"move_receipt_signature needs algorithm 1 (Ed25519) or 2 (ECDSA P-256) and {SigningKeyDescription.SignatureBytes} signature bytes");
        }

        RequireServing();
        if (_predecessors.Refusal(receipt.Receipt, receipt.Algorithm, receipt.Signature, _options.FleetId, user, parsed.TargetVersion) is { } why)
        {
            throw MoveRefused(why);
        }

        await _log.ReadBarrierAsync(cancellationToken);
        var current = _state.Read(user);
        if (current is not { State: RecordState.Pending or RecordState.Live } || current.Version != parsed.TargetVersion)
        {
            throw MoveRefused(current is { State: RecordState.Pending or RecordState.Live }
                ? $"the receipt is for version {parsed.TargetVersion} of the record, and the caller's record here is version {current.Version}: register on this fleet again and move with the new version"
                : "the caller has no pending record here: FinishRegistration with moving_from_fleet_id first");
        }

        var result = await SubmitAsync(new ActivateCommand(user, parsed.TargetVersion, receipt.Receipt, receipt.Algorithm, receipt.Signature), cancellationToken);
        switch (result.Outcome)
        {
            case CommandOutcome.Activated or CommandOutcome.Unchanged:
                var record = _state.Read(user)!;
                return new ActivationResult(record.GuessLimit, record.Registrations);
            case CommandOutcome.VersionConflict or CommandOutcome.NotRegistered or CommandOutcome.Destroyed:
                throw MoveRefused("the pending record changed while it was being activated (registered again or deleted); register again and move with the new version");
            default:
                throw Unexpected(user, result);
        }
    }

    /// <summary>Whether the caller has a record and how many guesses remain.</summary>
    public async Task<RecordStatus> GetStatusAsync(UserIdentity user, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(user);
        RequireServing();
        await _log.ReadBarrierAsync(cancellationToken);
        var record = _state.Read(user);
        return record?.State switch
        {
            RecordState.Live => new RecordStatus(true, record.GuessLimit, record.GuessesRemaining, Destroyed: false, History: record.Registrations, RecordVersion: record.Version),
            RecordState.Destroyed => new RecordStatus(false, record.GuessLimit, 0, Destroyed: true, History: record.Registrations, RecordVersion: record.Version),
            RecordState.Pending => new RecordStatus(false, record.GuessLimit, record.GuessesRemaining, Destroyed: false, MovePending: true,
                History: record.Registrations, RecordVersion: record.Version),
            _ => new RecordStatus(false, 0, 0, Destroyed: false, History: record?.Registrations, RecordVersion: record?.Version ?? 0),
        };
    }

    /// <summary>
    /// Publishes this member's state digest at its latest checkpoint, once per checkpoint, so
    /// that every member can compare (see <see cref="StateDigestChain"/>). Called periodically
    /// by the host; a failure is retried at the next call.
    /// </summary>
    /// <returns>Whether a digest was published.</returns>
    public async Task<bool> PublishStateDigestAsync(CancellationToken cancellationToken)
    {
        if (_state.LatestCheckpointDigest() is not { } checkpoint || checkpoint.Index <= _lastPublishedDigest)
        {
            return false;
        }

        await SubmitAsync(new StateDigestCommand(checkpoint.Index, checkpoint.Digest), cancellationToken);
        _lastPublishedDigest = checkpoint.Index;
        return true;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _stopping.Cancel();
        _stopping.Dispose();
        _sessions.Dispose();
    }

    /// <summary>
    /// Charges one guess and makes its KE2. The session slot is reserved first, so a charged
    /// guess always has room for its answer.
    /// </summary>
    /// <param name="user">The caller.</param>
    /// <param name="ke1">KE1, already validated.</param>
    /// <param name="proposed">Set once a charge has been proposed: from then on a failure may have cost a guess.</param>
    /// <param name="cancellationToken">The service's lifetime.</param>
    private async Task<RecoveryStartResult> ChargeAndStartAsync(UserIdentity user, byte[] ke1, StrongBox<bool> proposed, CancellationToken cancellationToken)
    {
        using var reservation = _sessions.Reserve(user);
        var attemptId = RandomNumberGenerator.GetBytes(VaultCommandCodec.AttemptIdBytes);
        for (var attempt = 0; ; attempt++)
        {
            await _log.ReadBarrierAsync(cancellationToken);
            var current = _state.Read(user);
            if (current is null or { State: RecordState.Deleted })
            {
                throw NotRegistered(user);
            }

            if (current.State == RecordState.Destroyed)
            {
                throw Destroyed(user);
            }

            if (current.State == RecordState.Pending)
            {
                throw MovePending(user);
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
                proposed.Value = true;
                charge = await ChargeAsync(new ChargeGuessCommand(user, current.Version, current.AttemptSerial, attemptId), cancellationToken);
            }
            catch
            {
                start.State.Dispose();
                throw;
            }

            if (charge.Outcome == CommandOutcome.Charged)
            {
                FaultPoints.Hit(FaultPoints.AfterChargeCommitted);
                if (_logger.IsEnabled(LogLevel.Debug))
                {
                    var logged = user.ForLog(_options.LogUserIds);
                    Log.GuessCharged(_logger, logged, charge.GuessesRemaining);
                }

                var session = new RecoverySession(user, current.Version, charge.AttemptSerial, start.State, contents.EncryptedSecret, charge.GuessesRemaining, _sessions.NewExpiry());
                return new RecoveryStartResult(start.Ke2, reservation.Fill(session), charge.GuessesRemaining);
            }

            start.State.Dispose();
            switch (charge.Outcome)
            {
                case CommandOutcome.Destroyed:
                    throw Destroyed(user);
                case CommandOutcome.NotRegistered:
                    throw NotRegistered(user);
                case CommandOutcome.VersionConflict when attempt < MaxVersionConflictRetries:
                    continue;
                default:
                    throw Unexpected(user, charge);
            }
        }
    }

    /// <summary>
    /// Commits a charge, and when the log cannot say whether it took effect, finds out: a charge
    /// names the attempt serial it was decided on, so proposing it again can never charge twice,
    /// and the record remembers the ids of its last charges, so this member can tell its own.
    /// Gives up (Unavailable) when the session would have expired anyway, or when a copy was
    /// refused and the record no longer shows whether the first took effect (it was replaced,
    /// or more charges pushed this one out of its memory): one attempt never charges twice.
    /// </summary>
    private async Task<CommandResult> ChargeAsync(ChargeGuessCommand charge, CancellationToken cancellationToken)
    {
        var signed = OnToken(() => _signer.Sign(charge));
        var deadline = _time.GetUtcNow() + _options.RecoverySessionTimeout;
        var outcomeWasUnknown = false;
        while (true)
        {
            CommandResult result;
            try
            {
                result = await _log.SubmitAsync(signed, cancellationToken);
            }
            catch (VaultException e) when (e.Error == VaultError.Unavailable && _time.GetUtcNow() < deadline)
            {
                Log.ChargeOutcomeUnknown(_logger, charge.User.ForLog(_options.LogUserIds), e.Message);
                outcomeWasUnknown = true;
                await Task.Delay(OutcomeProbePause, _time, cancellationToken);
                if (await CommittedAlreadyAsync(charge, cancellationToken) is { } found)
                {
                    return found;
                }

                continue;
            }

            if (outcomeWasUnknown && result.Outcome != CommandOutcome.Charged)
            {
                // Either the first proposal took effect after all (this copy found the serial
                // moved on, and the record remembers the charge), or nothing says whether it did:
                // then the answer is "unknown", never a definite one that would let the caller's
                // next step charge a second guess for this one attempt.
                return await CommittedAlreadyAsync(charge, cancellationToken) ?? throw ChargeOutcomeUnknown(charge.User);
            }

            return result;
        }
    }

    private async Task<CommandResult?> CommittedAlreadyAsync(ChargeGuessCommand charge, CancellationToken cancellationToken)
    {
        try
        {
            await _log.ReadBarrierAsync(cancellationToken);
        }
        catch (VaultException e) when (e.Error == VaultError.Unavailable)
        {
            return null;
        }

        var record = _state.Read(charge.User);
        return record is { State: RecordState.Live } && record.Version == charge.Version
            && RecentCharges.RemainingAfter(record.RecentCharges, charge.AttemptId) is { } remaining
            ? new CommandResult(CommandOutcome.Charged, remaining, charge.AttemptSerial + 1)
            : null;
    }

    private async Task<RecoveryFinishResult> FailedGuessAsync(RecoverySession session, CancellationToken cancellationToken)
    {
        if (_logger.IsEnabled(LogLevel.Debug))
        {
            var logged = session.User.ForLog(_options.LogUserIds);
            Log.WrongPassword(_logger, logged, session.GuessesRemaining);
        }

        if (session.GuessesRemaining > 0)
        {
            return new RecoveryFinishResult(RecoveryOutcome.WrongPassword, session.GuessesRemaining, null);
        }

        var result = await SubmitAsync(new DestroyIfExhaustedCommand(session.User, session.Version), cancellationToken);
        return result.Outcome == CommandOutcome.Destroyed
            ? new RecoveryFinishResult(RecoveryOutcome.RecordDestroyed, 0, null)
            : new RecoveryFinishResult(RecoveryOutcome.WrongPassword, result.GuessesRemaining, null);
    }

    private Task<CommandResult> SubmitAsync(VaultCommand command, CancellationToken cancellationToken) =>
        _log.SubmitAsync(OnToken(() => _signer.Sign(command)), cancellationToken);

    /// <summary>A member whose state differs from the fleet's answers nothing from it.</summary>
    private void RequireServing()
    {
        if (_state.Divergence is { } divergence)
        {
            throw new VaultException(VaultError.Unavailable,
                $"this member has stopped serving because its state differs from the fleet's ({divergence}); use another member. Operators: see the README's disaster-recovery procedure");
        }
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

    /// <summary>
    /// This fleet's signed statement that <paramref name="user"/> has no live record here, releasing
    /// it to <paramref name="moveTo"/>, with the history of the record as it was (its tombstone).
    /// </summary>
    private SignedMoveReceipt SignReceipt(UserIdentity user, MoveDestination moveTo, StoredRecord? tombstone)
    {
        var receipt = new MoveReceipt(_options.FleetId, moveTo.FleetId, user.Tenant, user.UserId, moveTo.RecordVersion,
            tombstone?.Registrations ?? RegistrationHistory.Empty).Encode();
        var signature = OnToken(() => _token.Sign(receipt));
        return new SignedMoveReceipt(receipt, _token.SigningKey.Algorithm, signature);
    }

    private static VaultException MoveRefused(string why) => new(VaultError.FailedPrecondition, $"the move is refused: {why}")
    {
        Reason = RefusalReason.MoveRefused,
    };

    private static VaultException AlreadyLiveHere(UserIdentity user) => new(VaultError.FailedPrecondition,
        $"{user} already has a live record on this fleet; a record moves here only when it has none (delete it first, or recover it here)")
    {
        Reason = RefusalReason.MoveRefused,
    };

    private static VaultException MovePending(UserIdentity user) => new(VaultError.FailedPrecondition,
        $"the record of {user} moved to this fleet and waits for its activation: ActivateRecord with the predecessor fleet's move receipt (DeleteRecord there with move_to)")
    {
        Reason = RefusalReason.MovePending,
    };

    private static VaultException AlreadyRegistered(UserIdentity user) => new(VaultError.FailedPrecondition,
        $"{user} is already registered; set replace_existing to replace the record (this resets its guess count)")
    {
        Reason = RefusalReason.AlreadyRegistered,
    };

    private static VaultException NotRegistered(UserIdentity user) => new(VaultError.NotFound,
        $"{user} has no record to recover; register first")
    {
        Reason = RefusalReason.NotRegistered,
    };

    private static VaultException Destroyed(UserIdentity user) => new(VaultError.FailedPrecondition,
        $"the record of {user} was destroyed after its last allowed guess; it cannot be recovered, register a new one")
    {
        Reason = RefusalReason.RecordDestroyed,
    };

    private static VaultException ChargeOutcomeUnknown(UserIdentity user) => new(VaultError.Unavailable,
        $"the fleet did not confirm whether this attempt charged a guess of {user}, and this member could not find out; " +
        "start a new recovery (a guess it charged stays charged)");

    private static VaultException Unexpected(UserIdentity user, CommandResult result) => result.Outcome switch
    {
        CommandOutcome.Refused => new(VaultError.Unavailable,
            "the fleet refused this member's signed command (see the audit log: its identity key is not endorsed); use another member"),
        _ => new(VaultError.Aborted, $"the record of {user} kept changing during this request; retry"),
    };

    /// <summary>
    /// Log messages of the vault service; event ids 4000-4099. The Debug ones are written under an
    /// <see cref="ILogger.IsEnabled"/> check, so a user's pseudonym (a SHA-256) is computed only for
    /// an event that is recorded.
    /// </summary>
    private static partial class Log
    {
        [LoggerMessage(EventId = 4002, EventName = "GuessCharged", Level = LogLevel.Debug, Message = "Charged a guess for {User}; {GuessesRemaining} remain")]
        public static partial void GuessCharged(ILogger logger, string user, int guessesRemaining);

        [LoggerMessage(EventId = 4003, EventName = "WrongPassword", Level = LogLevel.Debug, Message = "Wrong password for {User}; {GuessesRemaining} guesses remain")]
        public static partial void WrongPassword(ILogger logger, string user, int guessesRemaining);

        [LoggerMessage(EventId = 4005, EventName = "Recovered", Level = LogLevel.Debug, Message = "Recovered {User}")]
        public static partial void Recovered(ILogger logger, string user);

        [LoggerMessage(EventId = 4007, EventName = "ChargeOutcomeUnknown", Level = LogLevel.Warning,
            Message = "A charge for {User} was not confirmed ({Detail}); finding out whether it took effect before answering")]
        public static partial void ChargeOutcomeUnknown(ILogger logger, string user, string detail);
    }
}
