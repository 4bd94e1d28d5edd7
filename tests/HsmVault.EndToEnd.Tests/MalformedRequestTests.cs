using Google.Protobuf;
using Grpc.Core;
using HsmVault.EndToEnd.Tests.Support;
using HsmVault.Protocol.V1;
using Microsoft.Extensions.Logging;

namespace HsmVault.EndToEnd.Tests;

/// <summary>
/// Requests that are not protobuf at all, cut short, or carry a number the vault cannot hold get
/// INVALID_ARGUMENT with a one-line message, change nothing, and log no error or stack trace.
/// </summary>
public sealed class MalformedRequestTests : DaemonTest
{
    private static readonly Marshaller<byte[]> Bytes = Marshallers.Create(b => b, b => b);

    public static TheoryData<string> Methods => ["GetFleetInfo", "GetValidationBundle", "StartRegistration", "FinishRegistration", "StartRecovery", "FinishRecovery", "DeleteRecord", "GetStatus"];

    [Theory]
    [MemberData(nameof(Methods))]
    public async Task AnyMethod_WithGarbageBytes_IsInvalidArgument_InOneLine_WithoutErrorLog(string method)
    {
        // 0xFF... is an invalid tag and a varint that never ends.
        var error = await CallWithBytesAsync(method, [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]);

        AssertOneLineInvalidArgument(error, method);
    }

    [Fact]
    public async Task StartRecovery_WithTruncatedMessage_IsInvalidArgument_AndChargesNothing()
    {
        var raw = Daemon.CreateRawClient();
        var password = Setup.NewPassword();
        await Messages.RegisterAsync(raw, Setup.Headers("alice"), password, Setup.NewBackupKey());
        var whole = new StartRecoveryRequest { Ke1 = Messages.Ke1(password) }.ToByteArray();

        var error = await CallWithBytesAsync("StartRecovery", whole[..(whole.Length / 2)]);

        AssertOneLineInvalidArgument(error, "StartRecovery");
        var status = await raw.GetStatusAsync(new GetStatusRequest(), Setup.Headers("alice"));
        Assert.Equal(10u, status.GuessesRemaining);
    }

    [Theory]
    [InlineData(256u)]
    [InlineData(2147483648u)]
    [InlineData(4294967295u)]
    public async Task FinishRegistration_WithGuessLimitBeyondTheMaximum_IsInvalidArgument_NamingTheNumberSent(uint guessLimit)
    {
        var raw = Daemon.CreateRawClient();
        var headers = Setup.Headers("bob");
        var prepared = await Messages.RegistrationRecordAsync(raw, headers, Setup.NewPassword());

        var error = await Assert.ThrowsAsync<RpcException>(async () => await raw.FinishRegistrationAsync(
            new FinishRegistrationRequest
            {
                RegistrationRecord = ByteString.CopyFrom(prepared.RegistrationRecord),
                RegistrationTicket = prepared.Ticket,
                EncryptedSecret = Messages.Filled(60, 7),
                GuessLimit = guessLimit,
            },
            headers));

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains($"got {guessLimit}", error.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("255", error.Status.Detail, StringComparison.Ordinal);
        Assert.False((await raw.GetStatusAsync(new GetStatusRequest(), headers)).Registered);
    }

    private async Task<RpcException> CallWithBytesAsync(string method, byte[] body)
    {
        var descriptor = new Method<byte[], byte[]>(MethodType.Unary, "hsmvault.v1.Vault", method, Bytes, Bytes);
        var invoker = Daemon.CreateChannel().CreateCallInvoker();
        return await Assert.ThrowsAsync<RpcException>(async () =>
            await invoker.AsyncUnaryCall(descriptor, null, new CallOptions(Setup.Headers("alice")), body));
    }

    private void AssertOneLineInvalidArgument(RpcException error, string method)
    {
        Assert.True(error.StatusCode == StatusCode.InvalidArgument, $"{method}: {error.Status}");
        Assert.Contains($"{method}Request", error.Status.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', error.Status.Detail);
        // Event 1013 is the start-up warning of a member without a validation bundle, not the call's.
        var loud = Daemon.Logs.Events.Where(e => (e.Level >= LogLevel.Warning && e.EventId.Id != 1013) || e.Exception is not null).ToList();
        Assert.True(loud.Count == 0, "logged: " + string.Join('\n', loud));
    }
}
