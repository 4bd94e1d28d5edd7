using Grpc.Core;
using Grpc.Health.V1;
using HsmVault.Client;
using HsmVault.Hsm;
using HsmVault.Testing.Daemons;
using HsmVault.Testing.Faults;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Net.Pkcs11Interop.Common;

namespace HsmVault.Tokens.Tests;

/// <summary>
/// Hardware faults under a whole hsmvaultd (real Kestrel, Raft, SQLite, SoftHSM2 token), seen as a
/// client sees them through the gRPC API: a dropped session or an expired login is absorbed, a
/// pulled token turns calls into UNAVAILABLE with a message a person can act on and the health
/// service into NOT_SERVING, and no guess is ever refunded or answered wrongly.
/// </summary>
public sealed class DaemonTokenFaultTests : IAsyncLifetime, IDisposable
{
    private readonly TokenFaults _faults = new();
    private TestDaemon _daemon = null!;

    public async Task InitializeAsync() =>
        _daemon = await TestDaemon.StartAsync(services: services => services.AddSingleton<IVaultToken>(provider =>
            _faults.Open(
                provider.GetRequiredService<Microsoft.Extensions.Options.IOptions<TokenOptions>>().Value,
                provider.GetRequiredService<ILoggerFactory>().CreateLogger("HsmVault.Hsm"))));

    public async Task DisposeAsync() => await _daemon.DisposeAsync();

    public void Dispose() => _faults.Dispose();

    [Theory]
    [InlineData(CKR.CKR_SESSION_HANDLE_INVALID)]
    [InlineData(CKR.CKR_USER_NOT_LOGGED_IN)]
    [InlineData(CKR.CKR_DEVICE_ERROR)]
    public async Task Recovery_TokenDropsItsSessionOnce_AnswersRightAndCountsOnce(CKR fault)
    {
        var client = _daemon.CreateClient("alice");
        var password = _daemon.Setup.NewPassword();
        var backupKey = _daemon.Setup.NewBackupKey();
        await client.RegisterAsync(password, backupKey, guessLimit: 5);
        var wrong = await client.RecoverAsync("not the password"u8.ToArray());
        Assert.Equal(RecoveryStatus.WrongPassword, wrong.Status);
        Assert.Equal(4, wrong.GuessesRemaining);

        _faults.FailNext(fault);
        var right = await client.RecoverAsync(password);

        Assert.True(_faults.Injected >= 1, "the fault was never raised");
        Assert.Equal(RecoveryStatus.Recovered, right.Status);
        Assert.Equal(backupKey, right.BackupKey);
        Assert.Equal(5u, (await client.GetStatusAsync()).GuessesRemaining);
        _daemon.AssertCleanLogs();
    }

    [Fact]
    public async Task TokenPulledOut_CallsAreUnavailableAndHealthSaysSo_ThenItServesWithNothingRefunded()
    {
        var client = _daemon.CreateClient("bob");
        var password = _daemon.Setup.NewPassword();
        var backupKey = _daemon.Setup.NewBackupKey();
        await client.RegisterAsync(password, backupKey, guessLimit: 5);
        Assert.Equal(RecoveryStatus.WrongPassword, (await client.RecoverAsync("guess one"u8.ToArray())).Status);
        var health = new Health.HealthClient(_daemon.CreateChannel());
        _daemon.ExpectErrors(e => e.Message.Contains("token", StringComparison.OrdinalIgnoreCase));

        _faults.RemoveToken();
        var refused = await Assert.ThrowsAsync<RpcException>(() => client.RecoverAsync("guess two"u8.ToArray()));
        var unhealthy = await health.CheckAsync(new HealthCheckRequest());

        Assert.Equal(StatusCode.Unavailable, refused.StatusCode);
        Assert.Contains("token is unavailable", refused.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, unhealthy.Status);

        _faults.ReinsertToken();
        // The refused attempt may have been charged before the token failed, or not; never refunded.
        var afterRefusal = (await client.GetStatusAsync()).GuessesRemaining;
        Assert.InRange(afterRefusal, 3u, 4u);
        var wrongAgain = await client.RecoverAsync("guess three"u8.ToArray());
        Assert.Equal(RecoveryStatus.WrongPassword, wrongAgain.Status);
        Assert.Equal((int)afterRefusal - 1, wrongAgain.GuessesRemaining);
        var right = await client.RecoverAsync(password);
        Assert.Equal(RecoveryStatus.Recovered, right.Status);
        Assert.Equal(backupKey, right.BackupKey);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, (await health.CheckAsync(new HealthCheckRequest())).Status);
    }

    [Fact]
    public async Task TokenPulledOutDuringRegistration_IsUnavailable_AndNoRecordIsLeftHalfMade()
    {
        var client = _daemon.CreateClient("carol");
        _daemon.ExpectErrors(e => e.Message.Contains("token", StringComparison.OrdinalIgnoreCase));

        _faults.RemoveToken();
        var refused = await Assert.ThrowsAsync<RpcException>(() => client.RegisterAsync(_daemon.Setup.NewPassword(), _daemon.Setup.NewBackupKey()));
        _faults.ReinsertToken();

        Assert.Equal(StatusCode.Unavailable, refused.StatusCode);
        Assert.Contains("token is unavailable", refused.Status.Detail, StringComparison.Ordinal);
        Assert.False((await client.GetStatusAsync()).Registered);
        var password = _daemon.Setup.NewPassword();
        var backupKey = _daemon.Setup.NewBackupKey();
        await client.RegisterAsync(password, backupKey);
        Assert.Equal(backupKey, (await client.RecoverAsync(password)).BackupKey);
    }

    [Fact]
    public async Task TokenFailsWhileTheRaftLoopWritesItsMark_TheMemberWaitsForIt_AndTheWriteIsAnswered()
    {
        var client = _daemon.CreateClient("dave");
        _daemon.ExpectErrors(e => e.EventId.Id is 2003 or 3120);

        // Two failed writes of the rollback guard's mark (each is one attempt and the token's own retry).
        for (var i = 0; i < 4; i++)
        {
            _faults.FailNext(CKR.CKR_DEVICE_ERROR, "WriteDataObject");
        }

        var password = _daemon.Setup.NewPassword();
        var backupKey = _daemon.Setup.NewBackupKey();
        var registered = await client.RegisterAsync(password, backupKey, guessLimit: 3);

        Assert.Equal(3, registered.GuessLimit);
        Assert.Equal(4, _faults.Injected);
        Assert.Contains(_daemon.Logs.Events, e => e.EventId.Id == 3120);
        Assert.Contains(_daemon.Logs.Events, e => e.EventId.Id == 3121);
        Assert.Equal(backupKey, (await client.RecoverAsync(password)).BackupKey);
        Assert.Equal(3u, (await client.GetStatusAsync()).GuessesRemaining);
        _daemon.AssertCleanLogs();
    }
}
