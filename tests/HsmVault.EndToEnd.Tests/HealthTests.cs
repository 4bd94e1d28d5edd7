using Grpc.Health.V1;

namespace HsmVault.EndToEnd.Tests;

/// <summary>The standard grpc.health.v1 service.</summary>
public sealed class HealthTests : DaemonTest
{
    [Fact]
    public async Task HealthCheck_WithoutToken_SaysServingOnceTheMemberLeads()
    {
        var health = new Health.HealthClient(Daemon.CreateChannel());

        // A fresh member is NOT_SERVING until its first election is over (a fraction of a second).
        var status = HealthCheckResponse.Types.ServingStatus.Unknown;
        using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (status != HealthCheckResponse.Types.ServingStatus.Serving && !patience.IsCancellationRequested)
        {
            status = (await health.CheckAsync(new HealthCheckRequest())).Status;
            await Task.Delay(50);
        }

        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, status);
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

        // The capture sees the vault's audit events, in their own category, naming alice by
        // pseudonym only (so the secret search below is not vacuous) ...
        var alice = new HsmVault.Vault.UserIdentity(DaemonSetup.Tenant, "alice").Pseudonym();
        Assert.Contains(events, e => e.Category == "HsmVault.Audit" && e.EventId.Id == 5000 && e.Message.Contains(alice, StringComparison.Ordinal));
        Assert.Contains(events, e => e.Category == "HsmVault.Audit" && e.EventId.Id == 5002);
        Assert.DoesNotContain(events, e => e.Message.Contains("alice", StringComparison.Ordinal));
        // ... and none of the secrets this test used, nor the PIN.
        Assert.Empty(Setup.SecretsIn(Daemon.Logs.Text));
        Assert.Contains(Setup.Secrets, s => s == System.Text.Encoding.UTF8.GetString(password));
    }
}
