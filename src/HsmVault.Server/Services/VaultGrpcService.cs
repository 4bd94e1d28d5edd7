using HsmVault.Protocol;
using Google.Protobuf;
using Grpc.Core;
using ServerKeyPair = HsmVault.Crypto.Opaque.ServerKeyPair;
using HsmVault.Protocol.V1;
using HsmVault.Server.Authentication;
using HsmVault.Server.Bundles;
using HsmVault.Transparency.Bundles;
using HsmVault.Vault;
using Microsoft.AspNetCore.Authorization;
using Microsoft.Extensions.Options;
using VaultOutcome = HsmVault.Vault.RecoveryOutcome;

namespace HsmVault.Server.Services;

/// <summary>
/// The client API of <c>vault.proto</c>: translates messages to <see cref="VaultService"/>
/// calls for the authenticated caller. Refusals become gRPC statuses in
/// <see cref="VaultExceptionInterceptor"/>.
/// </summary>
[Authorize]
internal sealed class VaultGrpcService(
    VaultService vault, FleetInfoProvider fleetInfo, ServedBundle bundle, WitnessConsistencyProofs consistencyProofs) : Generated.Vault.VaultBase
{
    /// <inheritdoc/>
    [AllowAnonymous]
    public override Task<GetFleetInfoResponse> GetFleetInfo(GetFleetInfoRequest request, ServerCallContext context) =>
        Task.FromResult(fleetInfo.Current);

    /// <inheritdoc/>
    [AllowAnonymous]
    public override async Task<GetValidationBundleResponse> GetValidationBundle(GetValidationBundleRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(context);
        var served = bundle.Current ?? throw new RpcException(
            new Status(StatusCode.FailedPrecondition, "this member serves no validation bundle (HsmVault:Bundle:File is not set): it cannot be verified"),
            RefusalTrailer.For(RefusalReason.NoBundle));
        var response = new GetValidationBundleResponse { SignedBundle = served.Message };
        response.ConsistencyProofs.AddRange(await consistencyProofs.ForAsync(served, request.KnownCheckpoints, context.CancellationToken));
        if (bundle.Successor is { } successor)
        {
            response.Successor = successor.Message;
            foreach (var proof in await consistencyProofs.ForAsync(successor, request.KnownCheckpoints, context.CancellationToken))
            {
                if (!response.ConsistencyProofs.Any(p => (p.WitnessKeyName, p.OldSize, p.NewSize) == (proof.WitnessKeyName, proof.OldSize, proof.NewSize)))
                {
                    response.ConsistencyProofs.Add(proof);
                }
            }
        }

        return response;
    }

    /// <inheritdoc/>
    public override Task<StartRegistrationResponse> StartRegistration(StartRegistrationRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        RefuseIfRetired();
        var started = vault.StartRegistration(Caller(context), request.RegistrationRequest.ToByteArray());
        return Task.FromResult(new StartRegistrationResponse
        {
            RegistrationResponse = ByteString.CopyFrom(started.RegistrationResponse),
            RegistrationTicket = ByteString.CopyFrom(started.RegistrationTicket),
            RegistrationResponseSignature = new TaggedSignature
            {
                Algorithm = (uint)started.SignedBy.Algorithm,
                Signature = ByteString.CopyFrom(started.ResponseSignature),
            },
        });
    }

    /// <inheritdoc/>
    public override async Task<FinishRegistrationResponse> FinishRegistration(FinishRegistrationRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(context);
        RefuseIfRetired();
        var result = await vault.FinishRegistrationAsync(
            Caller(context),
            request.RegistrationTicket.ToByteArray(),
            request.RegistrationRecord.ToByteArray(),
            request.EncryptedSecret.ToByteArray(),
            request.GuessLimit,
            request.ReplaceExisting,
            bundle.Current?.Bundle.Epoch ?? 0,
            request.MovingFromFleetId,
            context.CancellationToken);
        return new FinishRegistrationResponse { GuessLimit = (uint)result.GuessLimit, Replaced = result.Replaced, RecordVersion = (ulong)result.RecordVersion };
    }

    /// <inheritdoc/>
    public override async Task<StartRecoveryResponse> StartRecovery(StartRecoveryRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(context);
        var result = await vault.StartRecoveryAsync(Caller(context), request.Ke1.ToByteArray(), request.RequestId.ToByteArray(), context.CancellationToken);
        return new StartRecoveryResponse
        {
            Ke2 = ByteString.CopyFrom(result.Ke2),
            SessionId = ByteString.CopyFrom(result.SessionId),
            GuessesRemaining = (uint)result.GuessesRemaining,
        };
    }

    /// <inheritdoc/>
    public override async Task<FinishRecoveryResponse> FinishRecovery(FinishRecoveryRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(context);
        var result = await vault.FinishRecoveryAsync(Caller(context), request.SessionId.ToByteArray(), request.Ke3.ToByteArray(), context.CancellationToken);
        return new FinishRecoveryResponse
        {
            Outcome = result.Outcome switch
            {
                VaultOutcome.Success => Protocol.V1.RecoveryOutcome.Success,
                VaultOutcome.WrongPassword => Protocol.V1.RecoveryOutcome.WrongPassword,
                _ => Protocol.V1.RecoveryOutcome.RecordDestroyed,
            },
            GuessesRemaining = (uint)result.GuessesRemaining,
            ReleasedSecret = result.ReleasedSecret is null ? ByteString.Empty : ByteString.CopyFrom(result.ReleasedSecret),
        };
    }

    /// <inheritdoc/>
    public override async Task<DeleteRecordResponse> DeleteRecord(DeleteRecordRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(context);
        var moveTo = request.MoveTo is { } to ? new MoveDestination(to.FleetId, to.RecordVersion > long.MaxValue ? 0 : (long)to.RecordVersion) : null;
        var receipt = await vault.DeleteAsync(Caller(context), moveTo, context.CancellationToken);
        return receipt is null ? new DeleteRecordResponse() : new DeleteRecordResponse
        {
            MoveReceipt = ByteString.CopyFrom(receipt.Receipt),
            MoveReceiptSignature = new TaggedSignature { Algorithm = (uint)receipt.Algorithm, Signature = ByteString.CopyFrom(receipt.Signature) },
        };
    }

    /// <inheritdoc/>
    public override async Task<ActivateRecordResponse> ActivateRecord(ActivateRecordRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(context);
        var signature = request.MoveReceiptSignature ?? throw new RpcException(new Status(StatusCode.InvalidArgument,
            "move_receipt_signature is missing: pass the predecessor's DeleteRecordResponse.move_receipt_signature"));
        var result = await vault.ActivateAsync(Caller(context),
            new SignedMoveReceipt(request.MoveReceipt.ToByteArray(), (Crypto.Signatures.SignatureAlgorithm)signature.Algorithm, signature.Signature.ToByteArray()),
            context.CancellationToken);
        var response = new ActivateRecordResponse { GuessLimit = (uint)result.GuessLimit };
        response.History.AddRange(result.History.Select(ToMessage));
        return response;
    }

    /// <inheritdoc/>
    public override async Task<GetStatusResponse> GetStatus(GetStatusRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var status = await vault.GetStatusAsync(Caller(context), context.CancellationToken);
        return new GetStatusResponse
        {
            Registered = status.Registered,
            GuessLimit = (uint)status.GuessLimit,
            GuessesRemaining = (uint)status.GuessesRemaining,
            Destroyed = status.Destroyed,
            MovePending = status.MovePending,
            RecordVersion = (ulong)status.RecordVersion,
            History = { (status.History ?? []).Select(ToMessage) },
        };
    }

    private static RegistrationEvent ToMessage(Protocol.Moves.RegistrationEvent registered) =>
        new() { FleetId = registered.FleetId, Epoch = registered.Epoch, RegisteredAtUnixMs = registered.RegisteredAtUnixMs };

    private static UserIdentity Caller(ServerCallContext context) => JwtAuthentication.CallerOf(context.GetHttpContext().User);

    /// <summary>A fleet past its bundle's not-after takes no new records; recoveries (and so moves to the successor) go on.</summary>
    private void RefuseIfRetired()
    {
        if (bundle.IsExpired)
        {
            var served = bundle.Current!.Bundle;
            throw new RpcException(
                new Status(StatusCode.FailedPrecondition,
                    $"fleet '{served.FleetId}' is retired: its validation bundle (epoch {served.Epoch}) expired at {served.NotAfter:O}; "
                    + (bundle.SuccessorDescription is { } successor ? $"register with its successor, {successor}" : "ask the operator where its successor is")),
                RefusalTrailer.For(RefusalReason.FleetRetired));
        }
    }
}

/// <summary>
/// What GetFleetInfo answers: from the served validation bundle when there is one (so it can never
/// disagree with what verifying clients check), else from configuration (a development fleet).
/// </summary>
public sealed class FleetInfoProvider(IOptions<VaultOptions> options, ServerKeyPair serverKeyPair, ServedBundle bundle)
{
    private GetFleetInfoResponse? _answer;
    private ServedBundleState? _answeredFrom;

    /// <summary>The fleet's OPAQUE parameters and public key.</summary>
    public GetFleetInfoResponse Current
    {
        get
        {
            var served = bundle.Current;
            var answer = Volatile.Read(ref _answer);
            if (answer is null || !ReferenceEquals(Volatile.Read(ref _answeredFrom), served))
            {
                answer = served is null ? FromConfiguration() : FromBundle(served);
                Volatile.Write(ref _answeredFrom, served);
                Volatile.Write(ref _answer, answer);
            }

            return answer;
        }
    }

    private GetFleetInfoResponse FromConfiguration() => new()
    {
        FleetId = options.Value.FleetId,
        MemberId = options.Value.MemberId,
        OpaqueSuite = BundleOpaqueConfiguration.DefaultSuite,
        OpaqueContext = ByteString.CopyFromUtf8(options.Value.OpaqueContext),
        ServerPublicKey = ByteString.CopyFrom(serverKeyPair.PublicKey),
        Argon2Id = new Argon2idParameters
        {
            MemoryKib = (uint)options.Value.Argon2MemoryKib,
            Iterations = (uint)options.Value.Argon2Iterations,
            Parallelism = (uint)options.Value.Argon2Parallelism,
        },
        DefaultGuessLimit = (uint)options.Value.DefaultGuessLimit,
        MaxEncryptedSecretBytes = RecordLimits.MaxEncryptedSecretBytes,
    };

    private GetFleetInfoResponse FromBundle(ServedBundleState served) => new()
    {
        FleetId = served.Bundle.FleetId,
        MemberId = options.Value.MemberId,
        OpaqueSuite = served.Bundle.Opaque.Suite,
        OpaqueContext = ByteString.CopyFrom(served.Bundle.Opaque.Context),
        ServerPublicKey = ByteString.CopyFrom(served.Bundle.OpaqueServerKey),
        Argon2Id = new Argon2idParameters
        {
            MemoryKib = served.Bundle.Opaque.Argon2MemoryKib,
            Iterations = served.Bundle.Opaque.Argon2Iterations,
            Parallelism = served.Bundle.Opaque.Argon2Parallelism,
        },
        DefaultGuessLimit = (uint)options.Value.DefaultGuessLimit,
        MaxEncryptedSecretBytes = RecordLimits.MaxEncryptedSecretBytes,
        BundleEpoch = served.Bundle.Epoch,
        BundleDigest = ByteString.CopyFrom(served.Digest),
    };
}
