using Google.Protobuf;
using Grpc.Core;
using HsmVault.Client;
using HsmVault.EndToEnd.Tests.Support;
using HsmVault.Protocol.V1;
using ProtoVault = HsmVault.Protocol.V1.Vault;

namespace HsmVault.EndToEnd.Tests;

/// <summary>
/// Every malformed, oversized, replayed or out-of-order message gets a clear gRPC status and
/// changes nothing: the status of a registered and of an unregistered user read the same
/// before and after, and in particular no guess is charged.
/// </summary>
public sealed class MalformedMessageTests : DaemonTest
{
    private const string Registered = "registered-user";
    private const string Unregistered = "unregistered-user";

    private byte[] _password = [];
    private byte[] _key = [];

    public static TheoryData<string, int, byte> BadRegistrationRequests => new()
    {
        { "empty", 0, 0x01 },
        { "one byte short", 31, 0x01 },
        { "one byte long", 33, 0x01 },
        { "all 0xFF (not an encoding)", 32, 0xFF },
        { "all zero (the identity)", 32, 0x00 },
    };

    public static TheoryData<string, int, byte> BadRegistrationRecords => new()
    {
        { "empty", 0, 0x01 },
        { "one byte short", 191, 0x01 },
        { "one byte long", 193, 0x01 },
        { "all 0xFF (client key not an encoding)", 192, 0xFF },
        { "all zero (client key is the identity)", 192, 0x00 },
    };

    public static TheoryData<string, int, byte> BadKe1s => new()
    {
        { "empty", 0, 0x01 },
        { "one byte short", 95, 0x01 },
        { "one byte long", 97, 0x01 },
        { "all 0xFF (not an encoding)", 96, 0xFF },
        { "all zero (the identity)", 96, 0x00 },
    };

    [Theory]
    [MemberData(nameof(BadRegistrationRequests))]
    public async Task StartRegistration_WithBadRegistrationRequest_IsInvalidArgument(string why, int length, byte fill)
    {
        var error = await RefusedWithoutChangeAsync(raw => raw.StartRegistrationAsync(
            new StartRegistrationRequest { RegistrationRequest = Messages.Filled(length, fill) }, Setup.Headers(Unregistered)));

        Assert.True(error.StatusCode == StatusCode.InvalidArgument, $"{why}: {error.Status}");
    }

    [Theory]
    [MemberData(nameof(BadRegistrationRecords))]
    public async Task FinishRegistration_WithBadRegistrationRecord_IsInvalidArgument(string why, int length, byte fill)
    {
        var error = await RefusedWithoutChangeAsync(raw => raw.FinishRegistrationAsync(
            new FinishRegistrationRequest { RegistrationRecord = Messages.Filled(length, fill), EncryptedSecret = Messages.Filled(60, 7) },
            Setup.Headers(Unregistered)));

        Assert.True(error.StatusCode == StatusCode.InvalidArgument, $"{why}: {error.Status}");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1025)]
    public async Task FinishRegistration_WithEncryptedSecretOutOfRange_IsInvalidArgument(int length)
    {
        var record = await Messages.RegistrationRecordAsync(Daemon.CreateRawClient(), Setup.Headers(Unregistered), Setup.NewPassword());

        var error = await RefusedWithoutChangeAsync(raw => raw.FinishRegistrationAsync(
            new FinishRegistrationRequest { RegistrationRecord = ByteString.CopyFrom(record.RegistrationRecord), RegistrationTicket = record.Ticket, EncryptedSecret = Messages.Filled(length, 7) },
            Setup.Headers(Unregistered)));

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
    }

    [Fact]
    public async Task FinishRegistration_WithoutTheTicketStartRegistrationReturned_IsInvalidArgument()
    {
        var record = await Messages.RegistrationRecordAsync(Daemon.CreateRawClient(), Setup.Headers(Unregistered), Setup.NewPassword());

        var error = await RefusedWithoutChangeAsync(raw => raw.FinishRegistrationAsync(
            new FinishRegistrationRequest { RegistrationRecord = ByteString.CopyFrom(record.RegistrationRecord), EncryptedSecret = Messages.Filled(60, 7) },
            Setup.Headers(Unregistered)));

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("registration_ticket", error.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task FinishRegistration_WithLargestEncryptedSecret_IsAccepted()
    {
        var raw = Daemon.CreateRawClient();
        var record = await Messages.RegistrationRecordAsync(raw, Setup.Headers(Unregistered), Setup.NewPassword());

        var response = await raw.FinishRegistrationAsync(
            new FinishRegistrationRequest { RegistrationRecord = ByteString.CopyFrom(record.RegistrationRecord), RegistrationTicket = record.Ticket, EncryptedSecret = Messages.Filled(1024, 7) },
            Setup.Headers(Unregistered));

        Assert.Equal(10u, response.GuessLimit);
    }

    [Fact]
    public async Task AnyCall_WithMessageOver16KiB_IsResourceExhausted()
    {
        var record = await Messages.RegistrationRecordAsync(Daemon.CreateRawClient(), Setup.Headers(Unregistered), Setup.NewPassword());

        var error = await RefusedWithoutChangeAsync(raw => raw.FinishRegistrationAsync(
            new FinishRegistrationRequest { RegistrationRecord = ByteString.CopyFrom(record.RegistrationRecord), RegistrationTicket = record.Ticket, EncryptedSecret = Messages.Filled(17 * 1024, 7) },
            Setup.Headers(Unregistered)));

        Assert.Equal(StatusCode.ResourceExhausted, error.StatusCode);
    }

    [Theory]
    [InlineData(256u)]
    [InlineData(uint.MaxValue)]
    public async Task FinishRegistration_WithGuessLimitOver255_IsInvalidArgument(uint guessLimit)
    {
        var record = await Messages.RegistrationRecordAsync(Daemon.CreateRawClient(), Setup.Headers(Unregistered), Setup.NewPassword());

        var error = await RefusedWithoutChangeAsync(raw => raw.FinishRegistrationAsync(
            new FinishRegistrationRequest
            {
                RegistrationRecord = ByteString.CopyFrom(record.RegistrationRecord), RegistrationTicket = record.Ticket,
                EncryptedSecret = Messages.Filled(60, 7),
                GuessLimit = guessLimit,
            },
            Setup.Headers(Unregistered)));

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
    }

    [Fact]
    public async Task FinishRegistration_OverExistingRecordWithoutReplace_IsAlreadyRegistered_AndKeepsTheOldKey()
    {
        var record = await Messages.RegistrationRecordAsync(Daemon.CreateRawClient(), Setup.Headers(Registered), Setup.NewPassword());

        var error = await RefusedWithoutChangeAsync(raw => raw.FinishRegistrationAsync(
            new FinishRegistrationRequest { RegistrationRecord = ByteString.CopyFrom(record.RegistrationRecord), RegistrationTicket = record.Ticket, EncryptedSecret = Messages.Filled(60, 7) },
            Setup.Headers(Registered)));
        var recovered = await Daemon.CreateClient(Registered).RecoverAsync(_password);

        Assert.Equal(StatusCode.FailedPrecondition, error.StatusCode);
        Assert.Equal(RefusalReason.AlreadyRegistered, VaultClient.ReasonOf(error));
        Assert.Equal(_key, recovered.BackupKey);
    }

    [Theory]
    [MemberData(nameof(BadKe1s))]
    public async Task StartRecovery_WithBadKe1_IsInvalidArgument_AndChargesNoGuess(string why, int length, byte fill)
    {
        foreach (var user in new[] { Registered, Unregistered })
        {
            var error = await RefusedWithoutChangeAsync(raw => raw.StartRecoveryAsync(
                new StartRecoveryRequest { Ke1 = Messages.Filled(length, fill) }, Setup.Headers(user)));

            Assert.True(error.StatusCode == StatusCode.InvalidArgument, $"{why} for {user}: {error.Status}");
        }
    }

    [Fact]
    public async Task StartRecovery_WithInvalidClientKeyshare_IsInvalidArgument_AndChargesNoGuess()
    {
        // A valid blinded element and nonce, but client_public_keyshare is not an encoding.
        var ke1 = Messages.Ke1(_password).ToByteArray();
        Array.Fill(ke1, (byte)0xFF, 64, 32);

        var error = await RefusedWithoutChangeAsync(raw => raw.StartRecoveryAsync(
            new StartRecoveryRequest { Ke1 = ByteString.CopyFrom(ke1) }, Setup.Headers(Registered)));

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(15)]
    [InlineData(17)]
    [InlineData(64)]
    public async Task FinishRecovery_WithBadSessionIdLength_IsInvalidArgument(int length)
    {
        var error = await RefusedWithoutChangeAsync(raw => raw.FinishRecoveryAsync(
            new FinishRecoveryRequest { SessionId = Messages.Filled(length, 1), Ke3 = Messages.Filled(64, 1) }, Setup.Headers(Registered)));

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(63)]
    [InlineData(65)]
    public async Task FinishRecovery_WithBadKe3Length_IsInvalidArgument_AndKeepsTheSessionUsable(int length)
    {
        var raw = Daemon.CreateRawClient();
        var (started, finish) = await Messages.StartRecoveryAsync(raw, Setup.Headers(Registered), _password);
        Assert.NotNull(finish);

        var error = await RefusedWithoutChangeAsync(r => r.FinishRecoveryAsync(
            new FinishRecoveryRequest { SessionId = started.SessionId, Ke3 = Messages.Filled(length, 1) }, Setup.Headers(Registered)));
        var finished = await raw.FinishRecoveryAsync(
            new FinishRecoveryRequest { SessionId = started.SessionId, Ke3 = ByteString.CopyFrom(finish.Ke3) }, Setup.Headers(Registered));

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Equal(RecoveryOutcome.Success, finished.Outcome);
        Assert.Equal(10u, finished.GuessesRemaining);
    }

    [Fact]
    public async Task FinishRecovery_WithoutStart_IsFailedPrecondition()
    {
        var error = await RefusedWithoutChangeAsync(raw => raw.FinishRecoveryAsync(
            new FinishRecoveryRequest { SessionId = Messages.Filled(16, 0x5A), Ke3 = Messages.Filled(64, 1) }, Setup.Headers(Registered)));

        Assert.Equal(StatusCode.FailedPrecondition, error.StatusCode);
        Assert.Equal(RefusalReason.UnknownSession, VaultClient.ReasonOf(error));
    }

    [Fact]
    public async Task FinishRecovery_WithReplayedKe3_IsFailedPreconditionUnknownSession()
    {
        var raw = Daemon.CreateRawClient();
        var (started, finish) = await Messages.StartRecoveryAsync(raw, Setup.Headers(Registered), _password);
        Assert.NotNull(finish);
        var request = new FinishRecoveryRequest { SessionId = started.SessionId, Ke3 = ByteString.CopyFrom(finish.Ke3) };
        var first = await raw.FinishRecoveryAsync(request, Setup.Headers(Registered));

        var replay = await RefusedWithoutChangeAsync(r => r.FinishRecoveryAsync(request, Setup.Headers(Registered)));

        Assert.Equal(RecoveryOutcome.Success, first.Outcome);
        Assert.Equal(StatusCode.FailedPrecondition, replay.StatusCode);
        Assert.Equal(RefusalReason.UnknownSession, VaultClient.ReasonOf(replay));
    }

    [Fact]
    public async Task FinishRecovery_WithAnotherUsersSession_IsFailedPreconditionUnknownSession()
    {
        var raw = Daemon.CreateRawClient();
        var (started, finish) = await Messages.StartRecoveryAsync(raw, Setup.Headers(Registered), _password);
        Assert.NotNull(finish);

        var error = await RefusedWithoutChangeAsync(r => r.FinishRecoveryAsync(
            new FinishRecoveryRequest { SessionId = started.SessionId, Ke3 = ByteString.CopyFrom(finish.Ke3) }, Setup.Headers(Unregistered)));
        var owner = await raw.FinishRecoveryAsync(
            new FinishRecoveryRequest { SessionId = started.SessionId, Ke3 = ByteString.CopyFrom(finish.Ke3) }, Setup.Headers(Registered));

        Assert.Equal(StatusCode.FailedPrecondition, error.StatusCode);
        Assert.Equal(RefusalReason.UnknownSession, VaultClient.ReasonOf(error));
        Assert.Equal(RecoveryOutcome.Success, owner.Outcome);
    }

    /// <inheritdoc/>
    protected override async Task OnStartedAsync()
    {
        _password = Setup.NewPassword();
        _key = Setup.NewBackupKey();
        await Daemon.CreateClient(Registered).RegisterAsync(_password, _key);
    }

    public static TheoryData<string, string, ulong> BadMoveDestinations => new()
    {
        { "no fleet id", "", 1 },
        { "a fleet id with a space", "other fleet", 1 },
        { "this fleet itself", DaemonSetup.FleetId, 1 },
        { "version 0", "next-fleet", 0 },
        { "a version beyond int64", "next-fleet", ulong.MaxValue },
    };

    [Theory]
    [MemberData(nameof(BadMoveDestinations))]
    public async Task DeleteRecord_WithABadMoveTo_IsInvalidArgumentAndDeletesNothing(string why, string fleetId, ulong version)
    {
        var error = await RefusedWithoutChangeAsync(raw => raw.DeleteRecordAsync(
            new DeleteRecordRequest { MoveTo = new MoveTo { FleetId = fleetId, RecordVersion = version } }, Setup.Headers(Registered)));

        Assert.True(error.StatusCode == StatusCode.InvalidArgument, $"{why}: {error.Status}");
        Assert.Contains("move_to", error.Status.Detail, StringComparison.Ordinal);
    }

    /// <summary>In <see cref="BadActivations"/>: a well-formed receipt for the registered user, so that only the signature is wrong.</summary>
    private const int WellFormedReceipt = -1;

    public static TheoryData<string, int, uint, int> BadActivations => new()
    {
        { "no receipt", 0, 1, 64 },
        { "a receipt of random bytes", 100, 1, 64 },
        { "an oversized receipt", 5000, 1, 64 },
        { "an unknown signature algorithm", WellFormedReceipt, 7, 64 },
        { "a short signature", WellFormedReceipt, 1, 63 },
    };

    [Theory]
    [MemberData(nameof(BadActivations))]
    public async Task ActivateRecord_WithAMalformedReceipt_IsRefusedSayingWhyAndChangesNothing(string why, int receiptLength, uint algorithm, int signatureLength)
    {
        var error = await RefusedWithoutChangeAsync(raw => raw.ActivateRecordAsync(
            new ActivateRecordRequest
            {
                MoveReceipt = receiptLength == WellFormedReceipt
                    ? ByteString.CopyFrom(new Protocol.Moves.MoveReceipt("old-fleet", DaemonSetup.FleetId, DaemonSetup.Tenant, Registered, 1, []).Encode())
                    : Messages.Filled(receiptLength, 0x41),
                MoveReceiptSignature = new TaggedSignature { Algorithm = algorithm, Signature = Messages.Filled(signatureLength, 1) },
            },
            Setup.Headers(Registered)));

        Assert.True(error.StatusCode == StatusCode.InvalidArgument, $"{why}: {error.Status}");
    }

    [Fact]
    public async Task ActivateRecord_WithAWellFormedReceiptOnAFleetWithoutPredecessors_IsMoveRefused()
    {
        var receipt = new Protocol.Moves.MoveReceipt("old-fleet", DaemonSetup.FleetId, DaemonSetup.Tenant, Registered, 1, []).Encode();

        var error = await RefusedWithoutChangeAsync(raw => raw.ActivateRecordAsync(
            new ActivateRecordRequest { MoveReceipt = ByteString.CopyFrom(receipt), MoveReceiptSignature = new TaggedSignature { Algorithm = 1, Signature = Messages.Filled(64, 1) } },
            Setup.Headers(Registered)));

        Assert.Equal(StatusCode.FailedPrecondition, error.StatusCode);
        Assert.Equal(RefusalReason.MoveRefused, VaultClient.ReasonOf(error));
        Assert.Contains("takes users over from no fleet", error.Status.Detail, StringComparison.Ordinal);
    }

    /// <summary>
    /// Runs <paramref name="call"/>, which must fail, and checks that neither user's status
    /// changed; returns the failure.
    /// </summary>
    private async Task<RpcException> RefusedWithoutChangeAsync<T>(Func<ProtoVault.VaultClient, AsyncUnaryCall<T>> call)
    {
        var raw = Daemon.CreateRawClient();
        var before = await StatusesAsync(raw);
        var error = await Assert.ThrowsAsync<RpcException>(async () => await call(raw));
        var after = await StatusesAsync(raw);
        Assert.Equal(before, after);
        Assert.False(string.IsNullOrWhiteSpace(error.Status.Detail), "a refusal must say why");
        return error;
    }

    private async Task<(GetStatusResponse Registered, GetStatusResponse Unregistered)> StatusesAsync(ProtoVault.VaultClient raw) =>
        (await raw.GetStatusAsync(new GetStatusRequest(), Setup.Headers(Registered)),
         await raw.GetStatusAsync(new GetStatusRequest(), Setup.Headers(Unregistered)));
}
