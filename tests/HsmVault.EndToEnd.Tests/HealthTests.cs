using Grpc.Health.V1;
using HsmVault.EndToEnd.Tests.Support;

namespace HsmVault.EndToEnd.Tests;

/// <summary>The standard grpc.health.v1 service.</summary>
public sealed class HealthTests : DaemonTest
{
    [Fact]
    public async Task HealthCheck_WithoutToken_SaysServing()
    {
        var health = new Health.HealthClient(Daemon.CreateChannel());

        var overall = await health.CheckAsync(new HealthCheckRequest());

        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, overall.Status);
    }

    [Fact]
    public async Task Logs_CarryAuditEvents_ButNoSecrets()
    {
        var password = Setup.NewPassword();
        var key = Setup.NewBackupKey();
        var client = Daemon.CreateClient("alice");
        await client.RegisterAsync(password, key);
        await client.RecoverAsync(password);
        await client.RecoverAsync(Setup.NewPassword());

        var events = Daemon.Logs.Events;

        // The capture sees the vault's own events (so the secret search below is not vacuous) ...
        Assert.Contains(events, e => e.EventId.Id == 4000 && e.Message.Contains("alice", StringComparison.Ordinal));
        Assert.Contains(events, e => e.EventId.Id == 4005);
        Assert.Contains(events, e => e.EventId.Id == 4003);
        // ... and none of the secrets this test used, nor the PIN.
        Assert.Empty(Setup.SecretsIn(Daemon.Logs.Text));
        Assert.Contains(Setup.Secrets, s => s == System.Text.Encoding.UTF8.GetString(password));
    }
}
