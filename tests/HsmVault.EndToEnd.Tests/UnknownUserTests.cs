using Grpc.Core;
using HsmVault.Client;
using HsmVault.EndToEnd.Tests.Support;
using HsmVault.Protocol.V1;

namespace HsmVault.EndToEnd.Tests;

/// <summary>
/// A user without a record: StartRecovery says so (the caller could ask GetStatus anyway) and
/// holds nothing, so no number of such calls can fill the member's session table.
/// </summary>
public sealed class UnknownUserTests : DaemonTest
{
    [Fact]
    public async Task StartRecovery_ForUnknownUser_IsNotFoundWithReason()
    {
        var raw = Daemon.CreateRawClient();
        var headers = Setup.Headers("nobody");

        var e = await Assert.ThrowsAsync<RpcException>(() => Messages.StartRecoveryAsync(raw, headers, Setup.NewPassword()));
        var status = await raw.GetStatusAsync(new GetStatusRequest(), headers);

        Assert.Equal(StatusCode.NotFound, e.StatusCode);
        Assert.Equal(RefusalReason.NotRegistered, VaultClient.ReasonOf(e));
        Assert.Contains("register first", e.Status.Detail, StringComparison.Ordinal);
        Assert.False(status.Registered);
    }

    [Fact]
    public async Task ManyStartsForUnknownUsers_LeaveEveryoneElsesRecoveriesAlone()
    {
        var client = Daemon.CreateClient("someone");
        var password = Setup.NewPassword();
        await client.RegisterAsync(password, Setup.NewBackupKey());
        var raw = Daemon.CreateRawClient();

        // Far more than the per-tenant session quota of the test daemon: none of them holds a slot.
        for (var i = 0; i < 200; i++)
        {
            var e = await Assert.ThrowsAsync<RpcException>(() => Messages.StartRecoveryAsync(raw, Setup.Headers($"nobody-{i}"), Setup.NewPassword()));
            Assert.Equal(StatusCode.NotFound, e.StatusCode);
        }

        var recovered = await client.RecoverAsync(password);
        Assert.Equal(RecoveryStatus.Recovered, recovered.Status);
    }
}
