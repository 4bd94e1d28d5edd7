using Grpc.Core;
using Grpc.Health.V1;
using HsmVault.Protocol.V1;

namespace HsmVault.EndToEnd.Tests;

/// <summary>
/// Token-bucket limits per tenant, per user and per remote address for unauthenticated calls:
/// a call beyond a limit is RESOURCE_EXHAUSTED naming the limit and when to retry, and other
/// callers are still served. The rates are set so low (one call in 1000 s) that no bucket refills
/// during a test, however slow the machine: only the burst counts.
/// </summary>
public sealed class RateLimitTests : DaemonTest
{
    private const string Slow = "0.001";

    [Fact]
    public async Task User_BeyondTheirBurst_IsResourceExhausted_NamingTheLimit_WhileOthersAreServed()
    {
        await RestartWithAsync(new() { ["HsmVault:RateLimits:UserOpsPerSec"] = Slow, ["HsmVault:RateLimits:UserBurstOps"] = "3" });
        var raw = Daemon.CreateRawClient();
        var alice = Setup.Headers("alice");
        for (var i = 0; i < 3; i++)
        {
            await raw.GetStatusAsync(new GetStatusRequest(), alice);
        }

        var refused = await Assert.ThrowsAsync<RpcException>(async () => await raw.GetStatusAsync(new GetStatusRequest(), alice));
        var bob = await raw.GetStatusAsync(new GetStatusRequest(), Setup.Headers("bob"));

        Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
        Assert.Contains("the per-user limit of 0.001 calls/s (burst 3)", refused.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("retry in ", refused.Status.Detail, StringComparison.Ordinal);
        Assert.True(long.Parse(refused.Trailers.GetValue("hsmvault-retry-after-ms")!, System.Globalization.CultureInfo.InvariantCulture) > 0);
        Assert.False(bob.Registered);
    }

    [Fact]
    public async Task Tenant_BeyondItsBurst_IsResourceExhausted_ForAllItsUsers_WhileOtherTenantsAreServed()
    {
        await RestartWithAsync(new() { ["HsmVault:Auth:Tenants:0:CapacityOpsPerSec"] = Slow, ["HsmVault:Auth:Tenants:0:BurstOps"] = "4" });
        var raw = Daemon.CreateRawClient();
        for (var i = 0; i < 4; i++)
        {
            await raw.GetStatusAsync(new GetStatusRequest(), Setup.Headers($"user-{i}"));
        }

        var refused = await Assert.ThrowsAsync<RpcException>(async () => await raw.GetStatusAsync(new GetStatusRequest(), Setup.Headers("user-4")));
        var otherTenant = await raw.GetStatusAsync(new GetStatusRequest(), Setup.Headers("user-4", DaemonSetup.OtherTenant));

        Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
        Assert.Contains("tenant 'e2e-tenant''s limit of 0.001 calls/s (burst 4)", refused.Status.Detail, StringComparison.Ordinal);
        Assert.False(otherTenant.Registered);
    }

    [Fact]
    public async Task UnauthenticatedCalls_FromOneAddress_BeyondTheBurst_AreResourceExhausted_AuthenticatedCallsAreNot()
    {
        await RestartWithAsync(new() { ["HsmVault:RateLimits:UnauthenticatedOpsPerSec"] = Slow, ["HsmVault:RateLimits:UnauthenticatedBurstOps"] = "2" });
        var raw = Daemon.CreateRawClient();
        var health = new Health.HealthClient(Daemon.CreateChannel());
        await raw.GetFleetInfoAsync(new GetFleetInfoRequest());
        await health.CheckAsync(new HealthCheckRequest());

        var fleetInfo = await Assert.ThrowsAsync<RpcException>(async () => await raw.GetFleetInfoAsync(new GetFleetInfoRequest()));
        var healthCheck = await Assert.ThrowsAsync<RpcException>(async () => await health.CheckAsync(new HealthCheckRequest()));
        var badToken = await Assert.ThrowsAsync<RpcException>(async () =>
            await raw.GetStatusAsync(new GetStatusRequest(), new Metadata { { "authorization", "Bearer not.a.jwt" } }));
        var authenticated = await raw.GetStatusAsync(new GetStatusRequest(), Setup.Headers("alice"));

        foreach (var error in new[] { fleetInfo, healthCheck, badToken })
        {
            Assert.Equal(StatusCode.ResourceExhausted, error.StatusCode);
            Assert.Contains("on unauthenticated calls from one address", error.Status.Detail, StringComparison.Ordinal);
        }

        Assert.False(authenticated.Registered);
    }

    [Theory]
    [InlineData("HsmVault:RateLimits:UserBurstOps", "0")]
    [InlineData("HsmVault:RateLimits:UnauthenticatedOpsPerSec", "0")]
    [InlineData("HsmVault:Auth:Tenants:0:CapacityOpsPerSec", "-5")]
    [InlineData("HsmVault:Auth:Tenants:1:MaxTokenLifetime", "00:00:00")]
    public async Task Start_WithInvalidLimit_ExitsNonZero_NamingTheSetting(string setting, string value)
    {
        var settings = Setup.Configuration();
        settings[setting] = value;

        var result = await ChildProcesses.RunAsync(ChildProcesses.DaemonDll, ["--config", Setup.WriteJsonConfig(settings, "invalid.json")]);

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("hsmvaultd: ", result.StandardError, StringComparison.Ordinal);
        Assert.Contains(setting, result.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", result.AllOutput, StringComparison.Ordinal);
    }

    private async Task RestartWithAsync(Dictionary<string, string?> settings)
    {
        foreach (var (key, value) in settings)
        {
            Daemon.Settings[key] = value;
        }

        await Daemon.RestartAsync();
    }
}
