using System.Security.Cryptography;
using Google.Protobuf;
using Grpc.Core;
using HsmVault.Crypto;
using HsmVault.Crypto.Opaque;
using HsmVault.Crypto.Signatures;
using HsmVault.Protocol;
using HsmVault.Protocol.V1;
using HsmVault.Transparency.Bundles;
using ProtoVault = HsmVault.Protocol.V1.Vault;

namespace HsmVault.Client;

/// <summary>How a recovery ended, from the user's side.</summary>
public enum RecoveryStatus
{
    /// <summary>The password was right; <see cref="RecoveryResult.BackupKey"/> holds the key.</summary>
    Recovered,

    /// <summary>The password was wrong; <see cref="RecoveryResult.GuessesRemaining"/> says how many tries are left.</summary>
    WrongPassword,

    /// <summary>The record is gone: its last allowed guess was used.</summary>
    RecordDestroyed,
}

/// <summary>The outcome of <see cref="VaultClient.RecoverAsync"/>.</summary>
/// <param name="Status">How it ended.</param>
/// <param name="GuessesRemaining">Tries left.</param>
/// <param name="BackupKey">The recovered key; the caller wipes it when done.</param>
public sealed record RecoveryResult(RecoveryStatus Status, int GuessesRemaining, byte[]? BackupKey)
{
    /// <summary>The successor fleet the record moved to during this recovery (a move begun now or finished now), or null.</summary>
    public ValidationBundle? MovedTo { get; init; }

    /// <summary>Why a move this recovery began did not finish (the key is recovered all the same; the next recovery finishes the move), or null.</summary>
    public string? MoveFailure { get; init; }
}

/// <summary>The outcome of <see cref="VaultClient.RegisterAsync"/>.</summary>
/// <param name="GuessLimit">The record's guess limit.</param>
/// <param name="Replaced">Whether a live record was replaced.</param>
/// <param name="FleetId">The fleet that stored the record (a successor when the fleet named one).</param>
/// <param name="RecordVersion">The stored record's version.</param>
public sealed record RegisterResult(int GuessLimit, bool Replaced, string FleetId = "", long RecordVersion = 0);

/// <summary>
/// The user's side of HsmVault: runs OPAQUE against a fleet member, encrypts the backup key
/// under OPAQUE's export_key before it leaves the device, and opens it again after a
/// successful login. The password and the backup key never reach the server.
/// </summary>
public sealed class VaultClient
{
    private readonly ProtoVault.VaultClient _rpc;
    private readonly Func<CancellationToken, ValueTask<string>> _bearerToken;
    private readonly IKeyStretchingFunction? _ksfOverride;
    private readonly FleetTrust? _trust;
    private readonly Func<VerifiedBundle, VaultClient>? _successorClient;
    private VaultClient? _successor;
    private GetFleetInfoResponse? _fleetInfo;
    private VerifiedBundle? _verified;

    /// <summary>Creates a client over a call invoker (usually a <c>GrpcChannel</c>).</summary>
    /// <param name="callInvoker">Where the member is.</param>
    /// <param name="bearerToken">Supplies the caller's JWT for each call.</param>
    /// <param name="ksfOverride">
    /// Replaces the fleet's Argon2id. The KSF runs only on the client, so the server cannot
    /// tell; only benchmarks and tests use this, to measure the server rather than Argon2.
    /// </param>
    /// <param name="trust">
    /// The pinned witness and operator keys: the client then verifies the fleet's validation
    /// bundle before it sends a password-derived byte, takes the OPAQUE configuration from it, and
    /// checks the server's key in every RegistrationResponse (and its fleet signature) and KE2
    /// against it. Null trusts GetFleetInfo as it comes: for development fleets only.
    /// </param>
    /// <param name="successorClient">
    /// With <paramref name="trust"/>: a client for a fleet's verified successor (a channel to one of its
    /// members' endpoints, a bearer token with its fleet id as audience, the same trust). The client then
    /// follows new fleets by itself: registrations go to the successor, and a user's record moves there at
    /// their next successful recovery here (README, "New fleets"). Null stays with this fleet.
    /// </param>
    public VaultClient(
        CallInvoker callInvoker, Func<CancellationToken, ValueTask<string>> bearerToken, IKeyStretchingFunction? ksfOverride = null, FleetTrust? trust = null,
        Func<VerifiedBundle, VaultClient>? successorClient = null)
    {
        _rpc = new ProtoVault.VaultClient(callInvoker);
        _bearerToken = bearerToken;
        _ksfOverride = ksfOverride;
        _trust = trust;
        _successorClient = successorClient;
    }

    /// <summary>The fleet's OPAQUE parameters (fetched once). Unauthenticated: with a <see cref="FleetTrust"/>, the client uses <see cref="VerifyFleetAsync"/>'s bundle instead.</summary>
    public async Task<GetFleetInfoResponse> GetFleetInfoAsync(CancellationToken cancellationToken = default) =>
        _fleetInfo ??= await _rpc.GetFleetInfoAsync(new GetFleetInfoRequest(), cancellationToken: cancellationToken);

    /// <summary>
    /// The fleet's verified validation bundle (fetched and verified once per client; see
    /// <see cref="FleetTrust"/>). Every registration and recovery calls it first.
    /// </summary>
    /// <exception cref="InvalidOperationException">The client was created without a <see cref="FleetTrust"/>.</exception>
    /// <exception cref="BundleRefusedException">The fleet's bundle is refused; the reason and message say what failed.</exception>
    public async Task<VerifiedBundle> VerifyFleetAsync(CancellationToken cancellationToken = default)
    {
        var trust = _trust ?? throw new InvalidOperationException("this client has no FleetTrust (pinned witness and operator keys) to verify a fleet with");
        return _verified ??= await trust.VerifyAsync(_rpc, cancellationToken);
    }

    /// <summary>Registers <paramref name="backupKey"/> behind <paramref name="password"/>.</summary>
    /// <param name="password">The password's bytes.</param>
    /// <param name="backupKey">The key to keep; encrypted here before it leaves.</param>
    /// <param name="guessLimit">Wrong guesses allowed, 1..255; 0 for the fleet's default.</param>
    /// <param name="replaceExisting">Whether to replace a live record.</param>
    /// <param name="cancellationToken">Cancels the calls.</param>
    /// <exception cref="ArgumentOutOfRangeException">The guess limit or the backup key's size is outside what the protocol allows: nothing was sent.</exception>
    public async Task<RegisterResult> RegisterAsync(
        ReadOnlyMemory<byte> password,
        ReadOnlyMemory<byte> backupKey,
        int guessLimit = 0,
        bool replaceExisting = false,
        CancellationToken cancellationToken = default)
    {
        if (guessLimit != 0 && !RecordLimits.IsGuessLimit(guessLimit))
        {
            throw new ArgumentOutOfRangeException(nameof(guessLimit), guessLimit,
                $"a guess limit is {RecordLimits.MinGuessLimit} to {RecordLimits.MaxGuessLimit}, or 0 for the fleet's default");
        }

        if (backupKey.IsEmpty || backupKey.Length + SecretEnvelopes.Overhead > RecordLimits.MaxEncryptedSecretBytes)
        {
            throw new ArgumentOutOfRangeException(nameof(backupKey), backupKey.Length,
                $"a backup key is 1 to {RecordLimits.MaxEncryptedSecretBytes - SecretEnvelopes.Overhead} bytes (the fleet stores at most {RecordLimits.MaxEncryptedSecretBytes} encrypted)");
        }

        // New records go to the fleet that takes this one's users over.
        return await SuccessorAsync(cancellationToken) is { } successor
            ? await successor.RegisterAsync(password, backupKey, guessLimit, replaceExisting, cancellationToken)
            : await RegisterHereAsync(password, backupKey, guessLimit, replaceExisting, movingFromFleet: null, cancellationToken);
    }

    /// <summary>OPAQUE registration with this fleet; with <paramref name="movingFromFleet"/>, stored pending a move from that fleet.</summary>
    private async Task<RegisterResult> RegisterHereAsync(
        ReadOnlyMemory<byte> password, ReadOnlyMemory<byte> backupKey, int guessLimit, bool replaceExisting, string? movingFromFleet, CancellationToken cancellationToken)
    {
        var opaque = new OpaqueClient(await ConfigurationAsync(cancellationToken));
        var start = opaque.CreateRegistrationRequest(password.Span);
        using var state = start.State;
        var response = await _rpc.StartRegistrationAsync(
            new StartRegistrationRequest { RegistrationRequest = ByteString.CopyFrom(start.RegistrationRequest) },
            await HeadersAsync(cancellationToken), cancellationToken: cancellationToken);
        if (_verified is { } verified)
        {
            RequireVouched(verified, start.RegistrationRequest, response);
        }

        var finish = opaque.FinalizeRegistrationRequest(state, response.RegistrationResponse.Span);
        try
        {
            var encryptedSecret = SecretEnvelopes.EncryptBackupKey(finish.ExportKey, backupKey.Span);
            var result = await _rpc.FinishRegistrationAsync(
                new FinishRegistrationRequest
                {
                    RegistrationRecord = ByteString.CopyFrom(finish.RegistrationRecord),
                    EncryptedSecret = ByteString.CopyFrom(encryptedSecret),
                    GuessLimit = (uint)guessLimit,
                    ReplaceExisting = replaceExisting,
                    RegistrationTicket = response.RegistrationTicket,
                    MovingFromFleetId = movingFromFleet ?? "",
                },
                await HeadersAsync(cancellationToken), cancellationToken: cancellationToken);
            return new RegisterResult((int)result.GuessLimit, result.Replaced, _verified?.Bundle.FleetId ?? "", (long)result.RecordVersion);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(finish.ExportKey);
        }
    }

    /// <summary>
    /// Tries <paramref name="password"/>. Each call costs one guess, charged by the fleet
    /// before it answers, whether or not the password is right.
    /// </summary>
    /// <remarks>
    /// When the fleet names a verified successor (and the client was given a way to reach it), a user
    /// whose record is here is moved there after a successful recovery: registered pending on the
    /// successor, deleted here against this fleet's signed receipt, activated there with it. A user
    /// with no record here is recovered on the successor, finishing a move an earlier recovery began.
    /// </remarks>
    public async Task<RecoveryResult> RecoverAsync(ReadOnlyMemory<byte> password, CancellationToken cancellationToken = default)
    {
        var successor = await SuccessorAsync(cancellationToken);
        if (successor is null)
        {
            return await RecoverHereAsync(password, cancellationToken);
        }

        RecoveryResult here;
        try
        {
            here = await RecoverHereAsync(password, cancellationToken);
        }
        catch (RpcException e) when (ReasonOf(e) == RefusalReason.NotRegistered)
        {
            // Moved already, or registered on the successor directly.
            return await RecoverOnSuccessorAsync(successor, password, cancellationToken);
        }

        if (here.Status != RecoveryStatus.Recovered)
        {
            return here;
        }

        try
        {
            await MoveAsync(successor, password, here.BackupKey!, here.GuessesRemaining, cancellationToken);
            return here with { MovedTo = successor._verified?.Bundle };
        }
        catch (Exception e) when (e is RpcException or BundleRefusedException)
        {
            return here with { MoveFailure = e.Message };
        }
    }

    /// <summary>
    /// Moves the record this recovery opened to <paramref name="successor"/>, in the order that never
    /// leaves two live records: pending there, deleted here (this fleet signs that none is left), live there.
    /// </summary>
    private async Task MoveAsync(VaultClient successor, ReadOnlyMemory<byte> password, byte[] backupKey, int guessLimit, CancellationToken cancellationToken)
    {
        var from = (await VerifyFleetAsync(cancellationToken)).Bundle.FleetId;
        var pending = await successor.RegisterHereAsync(password, backupKey, guessLimit, replaceExisting: false, movingFromFleet: from, cancellationToken);
        await FinishMoveAsync(successor, pending.RecordVersion, cancellationToken);
    }

    /// <summary>Gets this fleet's receipt for the successor's pending record of <paramref name="version"/> and activates it with it.</summary>
    private async Task FinishMoveAsync(VaultClient successor, long version, CancellationToken cancellationToken)
    {
        var to = (await successor.VerifyFleetAsync(cancellationToken)).Bundle.FleetId;
        var deleted = await _rpc.DeleteRecordAsync(
            new DeleteRecordRequest { MoveTo = new MoveTo { FleetId = to, RecordVersion = (ulong)version } },
            await HeadersAsync(cancellationToken), cancellationToken: cancellationToken);
        await successor._rpc.ActivateRecordAsync(
            new ActivateRecordRequest { MoveReceipt = deleted.MoveReceipt, MoveReceiptSignature = deleted.MoveReceiptSignature },
            await successor.HeadersAsync(cancellationToken), cancellationToken: cancellationToken);
    }

    /// <summary>Recovers on the successor; a record an earlier move left pending there is activated first (it costs no guess).</summary>
    private async Task<RecoveryResult> RecoverOnSuccessorAsync(VaultClient successor, ReadOnlyMemory<byte> password, CancellationToken cancellationToken)
    {
        var status = await successor._rpc.GetStatusAsync(new GetStatusRequest(), await successor.HeadersAsync(cancellationToken), cancellationToken: cancellationToken);
        if (!status.MovePending)
        {
            return await successor.RecoverAsync(password, cancellationToken);
        }

        await FinishMoveAsync(successor, (long)status.RecordVersion, cancellationToken);
        return await successor.RecoverAsync(password, cancellationToken) with { MovedTo = successor._verified?.Bundle };
    }

    /// <summary>A client for the verified successor of this fleet, when the fleet names one and this client may follow it.</summary>
    private async Task<VaultClient?> SuccessorAsync(CancellationToken cancellationToken) =>
        _trust is not null && _successorClient is not null && (await VerifyFleetAsync(cancellationToken)).Successor is { } successor
            ? (_successor ??= _successorClient(successor))
            : null;

    private async Task<RecoveryResult> RecoverHereAsync(ReadOnlyMemory<byte> password, CancellationToken cancellationToken)
    {
        var opaque = new OpaqueClient(await ConfigurationAsync(cancellationToken));
        var start = opaque.GenerateKe1(password.Span);
        using var state = start.State;
        StartRecoveryResponse started;
        try
        {
            started = await StartRecoveryAsync(start.Ke1, cancellationToken);
        }
        catch (RpcException e) when (ReasonOf(e) == RefusalReason.RecordDestroyed)
        {
            return new RecoveryResult(RecoveryStatus.RecordDestroyed, 0, null);
        }

        var finish = opaque.GenerateKe3(state, started.Ke2.Span);
        if (finish is not null && _verified is { } verified)
        {
            try
            {
                // The envelope authenticated the key this record was registered with: it must be the fleet's.
                verified.RequireOpaqueServerKey(finish.ServerPublicKey);
            }
            catch (BundleRefusedException)
            {
                CryptographicOperations.ZeroMemory(finish.SessionKey);
                CryptographicOperations.ZeroMemory(finish.ExportKey);
                throw;
            }
        }

        // A wrong password shows on this side first (KE2 does not authenticate). The client
        // still finishes with a KE3 that cannot verify, so the fleet records the failure at
        // once: on the last allowed guess that destroys the record now, not at the next try.
        var ke3 = finish?.Ke3 ?? RandomNumberGenerator.GetBytes(OpaqueSizes.Ke3);
        try
        {
            var finished = await _rpc.FinishRecoveryAsync(
                new FinishRecoveryRequest { SessionId = started.SessionId, Ke3 = ByteString.CopyFrom(ke3) },
                await HeadersAsync(cancellationToken), cancellationToken: cancellationToken);
            return finished.Outcome switch
            {
                Protocol.V1.RecoveryOutcome.Success when finish is not null => Recovered(finish, started.SessionId.Span, finished),
                Protocol.V1.RecoveryOutcome.RecordDestroyed => new RecoveryResult(RecoveryStatus.RecordDestroyed, 0, null),
                _ => new RecoveryResult(RecoveryStatus.WrongPassword, (int)finished.GuessesRemaining, null),
            };
        }
        finally
        {
            if (finish is not null)
            {
                CryptographicOperations.ZeroMemory(finish.SessionKey);
                CryptographicOperations.ZeroMemory(finish.ExportKey);
            }
        }
    }

    /// <summary>Whether the caller has a record, how many guesses remain, and its registration history; from the successor when the record is there.</summary>
    public async Task<GetStatusResponse> GetStatusAsync(CancellationToken cancellationToken = default)
    {
        var here = await _rpc.GetStatusAsync(new GetStatusRequest(), await HeadersAsync(cancellationToken), cancellationToken: cancellationToken);
        return !here.Registered && !here.Destroyed && await SuccessorAsync(cancellationToken) is { } successor
            ? await successor.GetStatusAsync(cancellationToken)
            : here;
    }

    /// <summary>Deletes the caller's record (on the successor when the record is there).</summary>
    public async Task DeleteAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            await _rpc.DeleteRecordAsync(new DeleteRecordRequest(), await HeadersAsync(cancellationToken), cancellationToken: cancellationToken);
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.NotFound && _successorClient is not null)
        {
            if (await SuccessorAsync(cancellationToken) is not { } successor)
            {
                throw;
            }

            await successor.DeleteAsync(cancellationToken);
        }
    }

    /// <summary>
    /// StartRecovery with a fresh request id, asked again with the same id when the answer was
    /// lost (UNAVAILABLE, DEADLINE_EXCEEDED): the guess may already be charged, and the same id
    /// fetches its KE2 instead of spending another.
    /// </summary>
    private async Task<StartRecoveryResponse> StartRecoveryAsync(byte[] ke1, CancellationToken cancellationToken)
    {
        var request = new StartRecoveryRequest
        {
            Ke1 = ByteString.CopyFrom(ke1),
            RequestId = ByteString.CopyFrom(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16)),
        };
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await _rpc.StartRecoveryAsync(request, await HeadersAsync(cancellationToken), cancellationToken: cancellationToken);
            }
            catch (RpcException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded && attempt < StartRecoveryAttempts)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(200 * attempt), cancellationToken);
            }
        }
    }

    private const int StartRecoveryAttempts = 3;

    /// <summary>Why the fleet refused a call (its <see cref="RefusalTrailer"/>); <see cref="RefusalReason.Unspecified"/> if it says not.</summary>
    public static RefusalReason ReasonOf(RpcException exception) => RefusalTrailer.Of(exception);

    private static RecoveryResult Recovered(ClientLoginFinish finish, ReadOnlySpan<byte> sessionId, FinishRecoveryResponse finished)
    {
        var encryptedSecret = SecretEnvelopes.OpenRelease(finish.SessionKey, sessionId, finished.ReleasedSecret.Span)
            ?? throw new InvalidDataException("the released secret does not authenticate under this login's session key");
        var backupKey = SecretEnvelopes.DecryptBackupKey(finish.ExportKey, encryptedSecret)
            ?? throw new InvalidDataException("the stored secret does not open under this password's export key");
        return new RecoveryResult(RecoveryStatus.Recovered, (int)finished.GuessesRemaining, backupKey);
    }

    /// <summary>
    /// Throws unless the RegistrationResponse carries the bundle's OPAQUE key and the bundle's fleet
    /// signing key vouches for it as the answer to this request (<see cref="RegistrationResponseSignature"/>).
    /// </summary>
    private static void RequireVouched(VerifiedBundle verified, byte[] registrationRequest, StartRegistrationResponse response)
    {
        var registrationResponse = response.RegistrationResponse.Span;
        if (registrationResponse.Length != OpaqueSizes.RegistrationResponse)
        {
            throw new BundleRefusedException(BundleRefusal.RegistrationNotVouched,
                $"the RegistrationResponse has {registrationResponse.Length} bytes, not {OpaqueSizes.RegistrationResponse}");
        }

        verified.RequireOpaqueServerKey(registrationResponse[OpaqueSizes.PublicKey..]);
        var signature = response.RegistrationResponseSignature;
        var fleetKey = verified.Bundle.FleetSigningKey;
        if (signature is null
            || signature.Algorithm != (uint)fleetKey.Algorithm
            || !fleetKey.Verifies(RegistrationResponseSignature.SignedMessage(verified.Bundle.FleetId, registrationRequest, registrationResponse), signature.Signature.Span))
        {
            throw new BundleRefusedException(BundleRefusal.RegistrationNotVouched,
                $"the RegistrationResponse is not signed by the fleet signing key {fleetKey.Fingerprint()} of fleet '{verified.Bundle.FleetId}' epoch {verified.Bundle.Epoch}: "
                + "whoever answered is not that fleet");
        }
    }

    private async Task<OpaqueConfiguration> ConfigurationAsync(CancellationToken cancellationToken)
    {
        if (_trust is not null)
        {
            var opaque = (await VerifyFleetAsync(cancellationToken)).Bundle.Opaque;
            if (opaque.Suite != BundleOpaqueConfiguration.DefaultSuite)
            {
                throw new BundleRefusedException(BundleRefusal.Malformed, $"the fleet's bundle names the OPAQUE suite '{opaque.Suite}', which this client does not implement");
            }

            return new OpaqueConfiguration(opaque.Context, _ksfOverride ?? new Argon2idKsf(
                new Crypto.Opaque.Argon2idParameters((int)opaque.Argon2MemoryKib, (int)opaque.Argon2Iterations, (int)opaque.Argon2Parallelism)));
        }

        var info = await GetFleetInfoAsync(cancellationToken);
        if (_ksfOverride is not null)
        {
            return new OpaqueConfiguration(info.OpaqueContext.Span, _ksfOverride);
        }

        var argon = info.Argon2Id ?? throw new InvalidDataException("the fleet did not publish its Argon2id parameters");
        return new OpaqueConfiguration(
            info.OpaqueContext.Span,
            new Argon2idKsf(new Crypto.Opaque.Argon2idParameters((int)argon.MemoryKib, (int)argon.Iterations, (int)argon.Parallelism)));
    }

    private async Task<Metadata> HeadersAsync(CancellationToken cancellationToken) =>
        new() { { "authorization", "Bearer " + await _bearerToken(cancellationToken) } };
}
