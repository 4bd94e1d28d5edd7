using HsmVault.Crypto.Opaque;
using HsmVault.Testing.Daemons;
using HsmVault.Testing.Opaque;

namespace HsmVault.Client.Tests;

/// <summary>The client takes its OPAQUE configuration from the fleet, so a client that stretches the password otherwise cannot log in.</summary>
public sealed class FleetInfoTests : DaemonTest
{
    [Fact]
    public async Task GetFleetInfo_IsTheDaemonsOpaqueConfiguration_FetchedOnce()
    {
        var client = Daemon.CreateClient("alice");

        var info = await client.GetFleetInfoAsync();

        Assert.Equal(DaemonSetup.FleetId, info.FleetId);
        Assert.Equal(TestOpaqueSettings.Context, info.OpaqueContext.ToStringUtf8());
        Assert.Equal(
            (TestOpaqueSettings.Argon2.MemoryKib, TestOpaqueSettings.Argon2.Iterations, TestOpaqueSettings.Argon2.Parallelism),
            ((int)info.Argon2Id.MemoryKib, (int)info.Argon2Id.Iterations, (int)info.Argon2Id.Parallelism));
        Assert.Same(info, await client.GetFleetInfoAsync());
    }

    [Fact]
    public async Task Recover_WithAnotherKeyStretchingThanAtRegistration_IsAWrongPassword()
    {
        var password = Setup.NewPassword();
        var key = Setup.NewBackupKey();
        var jwt = Setup.Mint("alice");
        var unstretched = new VaultClient(Daemon.CreateChannel().CreateCallInvoker(), _ => ValueTask.FromResult(jwt), new IdentityKsf());
        await unstretched.RegisterAsync(password, key);

        // The same password through the fleet's Argon2id is another OPAQUE password.
        var withFleetKsf = await Daemon.CreateClient("alice").RecoverAsync(password);
        var withSameKsf = await unstretched.RecoverAsync(password);

        Assert.Equal(RecoveryStatus.WrongPassword, withFleetKsf.Status);
        Assert.Null(withFleetKsf.BackupKey);
        Assert.Equal(RecoveryStatus.Recovered, withSameKsf.Status);
        Assert.Equal(key, withSameKsf.BackupKey);
    }
}
