using System.Collections.Concurrent;
using System.Security.Cryptography;
using Google.Protobuf;
using Grpc.Core;
using HsmVault.Crypto;
using HsmVault.Crypto.Opaque;
using HsmVault.Protocol.V1;
using HsmVault.Testing.Linearizability;
using HsmVault.Testing.Opaque;

namespace HsmVault.Fleet.Tests.Support;

/// <summary>A StartRecovery that was answered with a KE2: what FinishRecovery needs.</summary>
/// <param name="Member">The member that holds the session (FinishRecovery must go there).</param>
/// <param name="User">Whose record.</param>
/// <param name="SessionId">The session.</param>
/// <param name="Ke3">The client's KE3: a real one when KE2 authenticated, random bytes otherwise.</param>
/// <param name="PasswordAccepted">Whether KE2 authenticated under the password (so the KE3 will verify).</param>
/// <param name="Session">The number that pairs this start with its finish in the history.</param>
public sealed record RecoveryAttempt(FleetMember Member, string User, ByteString SessionId, ByteString Ke3, bool PasswordAccepted, int Session);

/// <summary>
/// A user's side of the vault protocol, message by message through the generated gRPC client,
/// recording every operation in a <see cref="HistoryRecorder{TInput, TOutput}"/> the way its XML
/// docs ask: invoked just before the request that can take effect, completed as soon as the
/// answer arrives; an answer that never came (Unavailable, a deadline, a reset connection) leaves
/// the operation pending, since a write may still have happened; a refusal that changed
/// nothing (InvalidArgument, Aborted, ResourceExhausted, a failed read) is discarded.
/// </summary>
/// <remarks>
/// FinishRecovery with a wrong password answers the guesses left as of that session's own
/// charge, whereas <see cref="VaultModel"/> expects the count as of the finish; when several
/// clients guess at one user concurrently the two differ without anything being wrong. With
/// <c>exactWrongPasswordCounts: false</c> such answers are recorded as unknown (sound: the model
/// then lets the finish have any effect it could have had).
/// </remarks>
public sealed class RecordingClient(
    FleetFixture fleet,
    HistoryRecorder<VaultInput, VaultOutput> history,
    int clientId,
    bool exactWrongPasswordCounts = true)
{
    // Session numbers pair each start with its finish in the history; unique in the process, so
    // across every client that shares a history.
    private static int s_lastSession;

    private readonly ConcurrentQueue<string> _unexpected = new();

    /// <summary>Answers no operation should ever get (e.g. Internal, DataLoss), with the call that got them.</summary>
    public IReadOnlyCollection<string> Unexpected => _unexpected;

    /// <summary>The gRPC status of the last failed call on this client (for tests that assert refusals).</summary>
    public StatusCode? LastError => LastFailure?.StatusCode;

    /// <summary>The last failed call on this client, for failure messages.</summary>
    public RpcException? LastFailure { get; private set; }

    /// <summary>Registers (<c>replace_existing</c> = <paramref name="replace"/>) on <paramref name="member"/>; null when the outcome is unknown or nothing happened.</summary>
    public async Task<VaultOutput?> RegisterAsync(FleetMember member, string user, byte[] password, int limit, bool replace = false)
    {
        var client = fleet.RawClient(member);
        var opaque = new OpaqueClient(TestOpaqueSettings.Configuration);
        var start = opaque.CreateRegistrationRequest(password);
        using var state = start.State;
        StartRegistrationResponse response;
        try
        {
            // Stateless on the server: nothing to record until the record is submitted.
            response = await client.StartRegistrationAsync(
                new StartRegistrationRequest { RegistrationRequest = ByteString.CopyFrom(start.RegistrationRequest) },
                fleet.Headers(user), Deadline());
        }
        catch (RpcException e)
        {
            LastFailure = e;
            return null;
        }

        var finish = opaque.FinalizeRegistrationRequest(state, response.RegistrationResponse.Span);
        var backupKey = RandomNumberGenerator.GetBytes(32);
        var request = new FinishRegistrationRequest
        {
            RegistrationRecord = ByteString.CopyFrom(finish.RegistrationRecord),
            EncryptedSecret = ByteString.CopyFrom(SecretEnvelopes.EncryptBackupKey(finish.ExportKey, backupKey)),
            GuessLimit = (uint)limit,
            ReplaceExisting = replace,
            RegistrationTicket = response.RegistrationTicket,
        };
        CryptographicOperations.ZeroMemory(finish.ExportKey);
        var op = history.Invoke(clientId, user, new VaultInput.Register(limit, replace));
        try
        {
            await client.FinishRegistrationAsync(request, fleet.Headers(user), Deadline());
            return Return(op, new VaultOutput.Registered());
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.FailedPrecondition && Reason(e) == RefusalReason.AlreadyRegistered)
        {
            return Return(op, new VaultOutput.AlreadyRegistered());
        }
        catch (RpcException e)
        {
            return Refused(op, e, $"FinishRegistration on {member}");
        }
    }

    /// <summary>
    /// Set-up: registers <paramref name="user"/> for sure, retrying (recorded, like any client
    /// retry) while the fleet refuses with Unavailable, e.g. just after an election.
    /// </summary>
    public async Task EnsureRegisteredAsync(FleetMember member, string user, byte[] password, int limit)
    {
        var failures = new List<string>();
        for (var attempt = 0; attempt < 5; attempt++)
        {
            var output = await RegisterAsync(member, user, password, limit);
            if (output is VaultOutput.Registered || (output is VaultOutput.AlreadyRegistered && failures.Count > 0))
            {
                return;
            }

            Assert.True(output is null, $"registering {user} on {member} answered {output}");
            failures.Add(LastFailure?.Status.ToString() ?? "?");
            await fleet.LeaderAsync();
            await Task.Delay(200);
        }

        Assert.Fail($"registering {user} on {member} failed 5 times: {string.Join("; ", failures)}");
    }

    /// <summary>StartRecovery on <paramref name="member"/>: the output (null when unknown) and, when charged, what FinishRecovery needs.</summary>
    public async Task<(VaultOutput? Output, RecoveryAttempt? Attempt)> StartRecoveryAsync(FleetMember member, string user, byte[] password)
    {
        var opaque = new OpaqueClient(TestOpaqueSettings.Configuration);
        var start = opaque.GenerateKe1(password);
        using var state = start.State;
        var session = Interlocked.Increment(ref s_lastSession);
        var op = history.Invoke(clientId, user, new VaultInput.StartRecovery(session));
        StartRecoveryResponse started;
        try
        {
            started = await fleet.RawClient(member).StartRecoveryAsync(
                new StartRecoveryRequest { Ke1 = ByteString.CopyFrom(start.Ke1) }, fleet.Headers(user), Deadline());
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.FailedPrecondition && Reason(e) == RefusalReason.RecordDestroyed)
        {
            return (Return(op, new VaultOutput.Destroyed()), null);
        }
        catch (RpcException e)
        {
            return (Refused(op, e, $"StartRecovery on {member}"), null);
        }

        // Every user of these tests is registered before it recovers, so a KE2 means a charge.
        var output = Return(op, new VaultOutput.Charged((int)started.GuessesRemaining));
        var finish = opaque.GenerateKe3(state, started.Ke2.Span);
        var ke3 = finish?.Ke3 ?? RandomNumberGenerator.GetBytes(OpaqueSizes.Ke3);
        if (finish is not null)
        {
            CryptographicOperations.ZeroMemory(finish.SessionKey);
            CryptographicOperations.ZeroMemory(finish.ExportKey);
        }

        return (output, new RecoveryAttempt(member, user, started.SessionId, ByteString.CopyFrom(ke3), finish is not null, session));
    }

    /// <summary>FinishRecovery of <paramref name="attempt"/> on the member that holds its session; null when unknown.</summary>
    public async Task<VaultOutput?> FinishRecoveryAsync(RecoveryAttempt attempt)
    {
        ArgumentNullException.ThrowIfNull(attempt);
        var op = history.Invoke(clientId, attempt.User, new VaultInput.FinishRecovery(attempt.PasswordAccepted, attempt.Session));
        try
        {
            var finished = await fleet.RawClient(attempt.Member).FinishRecoveryAsync(
                new FinishRecoveryRequest { SessionId = attempt.SessionId, Ke3 = attempt.Ke3 }, fleet.Headers(attempt.User), Deadline());
            switch (finished.Outcome)
            {
                case Protocol.V1.RecoveryOutcome.Success:
                    return Return(op, new VaultOutput.Success());
                case Protocol.V1.RecoveryOutcome.RecordDestroyed:
                    return Return(op, new VaultOutput.Destroyed());
                case Protocol.V1.RecoveryOutcome.WrongPassword when exactWrongPasswordCounts:
                    return Return(op, new VaultOutput.WrongPassword((int)finished.GuessesRemaining));
                case Protocol.V1.RecoveryOutcome.WrongPassword:
                    op.Fail();
                    return new VaultOutput.WrongPassword((int)finished.GuessesRemaining);
                default:
                    _unexpected.Enqueue($"FinishRecovery on {attempt.Member}: outcome {finished.Outcome}");
                    op.Fail();
                    return null;
            }
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.FailedPrecondition)
        {
            // The session is gone (its member restarted) or the record was replaced: nothing changes.
            return Return(op, new VaultOutput.SessionInvalid());
        }
        catch (RpcException e)
        {
            return Refused(op, e, $"FinishRecovery on {attempt.Member}");
        }
    }

    /// <summary>StartRecovery then, if charged, FinishRecovery on the same member; the last known output.</summary>
    public async Task<VaultOutput?> RecoverAsync(FleetMember member, string user, byte[] password)
    {
        var (output, attempt) = await StartRecoveryAsync(member, user, password);
        return attempt is null ? output : await FinishRecoveryAsync(attempt);
    }

    /// <summary>GetStatus on <paramref name="member"/>; null when refused (a failed read changes nothing, so it is discarded).</summary>
    public async Task<VaultOutput.Status?> StatusAsync(FleetMember member, string user)
    {
        var op = history.Invoke(clientId, user, new VaultInput.Status());
        try
        {
            var status = await fleet.RawClient(member).GetStatusAsync(new GetStatusRequest(), fleet.Headers(user), Deadline());
            var output = new VaultOutput.Status(status.Registered, (int)status.GuessesRemaining, status.Destroyed);
            op.Return(output);
            return output;
        }
        catch (RpcException e)
        {
            LastFailure = e;
            if (!IsUnknownOutcome(e.StatusCode))
            {
                _unexpected.Enqueue($"GetStatus on {member}: {e.StatusCode} {e.Status.Detail}");
            }

            op.Discard();
            return null;
        }
    }

    /// <summary>Whether a call that failed with <paramref name="code"/> may or may not have taken effect.</summary>
    public static bool IsUnknownOutcome(StatusCode code) => code is StatusCode.Unavailable or StatusCode.DeadlineExceeded or StatusCode.Cancelled;

    private static DateTime Deadline() => DateTime.UtcNow + FleetFixture.CallTimeout;

    private static RefusalReason Reason(RpcException e) => RefusalTrailer.Of(e);

    private static VaultOutput Return(RecordedOperation<VaultInput, VaultOutput> op, VaultOutput output)
    {
        op.Return(output);
        return output;
    }

    private VaultOutput? Refused(RecordedOperation<VaultInput, VaultOutput> op, RpcException e, string call)
    {
        LastFailure = e;
        switch (e.StatusCode)
        {
            case StatusCode.InvalidArgument or StatusCode.Aborted or StatusCode.ResourceExhausted:
                // Refused before anything was proposed, or every proposal was refused by apply.
                op.Discard();
                break;
            default:
                if (!IsUnknownOutcome(e.StatusCode))
                {
                    _unexpected.Enqueue($"{call}: {e.StatusCode} {e.Status.Detail}");
                }

                op.Fail();
                break;
        }

        return null;
    }
}
