using HsmVault.Protocol;
using Grpc.Core;
using HsmVault.Testing.Daemons;

namespace HsmVault.Client.Tests;

/// <summary>
/// What the client library reports when the daemon refuses: a gRPC status whose message says what
/// was wrong and what to do, and nothing stored or charged.
/// </summary>
public sealed class RefusalTests : DaemonTest
{
    [Theory]
    [InlineData(-1)]
    [InlineData(256)]
    [InlineData(1000)]
    public async Task Register_WithGuessLimitOutsideTheBounds_IsRefusedByTheClientNamingThem_AndSendsNothing(int guessLimit)
    {
        var client = Daemon.CreateClient("alice");

        var refused = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => client.RegisterAsync(Setup.NewPassword(), Setup.NewBackupKey(), guessLimit));
        var status = await client.GetStatusAsync();

        Assert.Equal("guessLimit", refused.ParamName);
        Assert.Contains($"a guess limit is {RecordLimits.MinGuessLimit} to {RecordLimits.MaxGuessLimit}", refused.Message, StringComparison.Ordinal);
        Assert.False(status.Registered);
        Assert.DoesNotContain(Daemon.Logs.Events, e => e.Message.Contains("StartRegistration", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Register_WithBackupKeyLargerThanTheFleetStores_IsRefusedByTheClientNamingTheLimit()
    {
        var client = Daemon.CreateClient("alice");
        var limit = (int)(await client.GetFleetInfoAsync()).MaxEncryptedSecretBytes;

        // The key is encrypted on the client; its ciphertext (key + 28 bytes) is what the fleet bounds.
        var refused = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => client.RegisterAsync(Setup.NewPassword(), new byte[limit - 27]));
        var accepted = await client.RegisterAsync(Setup.NewPassword(), new byte[limit - 28]);

        Assert.Equal("backupKey", refused.ParamName);
        Assert.Contains($"a backup key is 1 to {limit - 28} bytes", refused.Message, StringComparison.Ordinal);
        Assert.Equal(10, accepted.GuessLimit);
    }

    [Fact]
    public async Task Register_WithAGuessLimitTheClientDidNotCheck_IsInvalidArgumentAtTheFleet_AndStoresNothing()
    {
        // A client in another language that sends 256: the fleet refuses it, naming the bounds.
        var raw = Daemon.CreateRawClient();
        var opaque = new HsmVault.Crypto.Opaque.OpaqueClient(HsmVault.Testing.Opaque.TestOpaqueSettings.Configuration);
        var start = opaque.CreateRegistrationRequest(Setup.NewPassword());
        using var state = start.State;
        var headers = Setup.Headers("alice");
        var response = await raw.StartRegistrationAsync(
            new Protocol.V1.StartRegistrationRequest { RegistrationRequest = Google.Protobuf.ByteString.CopyFrom(start.RegistrationRequest) }, headers);
        var finish = opaque.FinalizeRegistrationRequest(state, response.RegistrationResponse.Span);

        var refused = await Assert.ThrowsAsync<RpcException>(() => raw.FinishRegistrationAsync(new Protocol.V1.FinishRegistrationRequest
        {
            RegistrationRecord = Google.Protobuf.ByteString.CopyFrom(finish.RegistrationRecord),
            EncryptedSecret = Google.Protobuf.ByteString.CopyFrom(new byte[60]),
            GuessLimit = 256,
            RegistrationTicket = response.RegistrationTicket,
        }, headers).ResponseAsync);

        Assert.Equal(StatusCode.InvalidArgument, refused.StatusCode);
        Assert.Contains($"guess_limit must be {RecordLimits.MinGuessLimit} to {RecordLimits.MaxGuessLimit}", refused.Status.Detail, StringComparison.Ordinal);
        Assert.False((await Daemon.CreateClient("alice").GetStatusAsync()).Registered);
    }

    [Fact]
    public async Task Register_AgainWithoutReplaceExisting_IsFailedPreconditionSayingHowToReplace_AndKeepsTheFirstKey()
    {
        var client = Daemon.CreateClient("alice");
        var password = Setup.NewPassword();
        var key = Setup.NewBackupKey();
        await client.RegisterAsync(password, key);

        var refused = await Assert.ThrowsAsync<RpcException>(() => client.RegisterAsync(Setup.NewPassword(), Setup.NewBackupKey()));
        var recovered = await client.RecoverAsync(password);

        Assert.Equal(StatusCode.FailedPrecondition, refused.StatusCode);
        Assert.Contains("is already registered; set replace_existing to replace the record", refused.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(key, recovered.BackupKey);
    }

    [Fact]
    public async Task Recover_ForAUserWithoutARecord_IsNotFoundSayingRegisterFirst()
    {
        var client = Daemon.CreateClient("nobody");

        var refused = await Assert.ThrowsAsync<RpcException>(() => client.RecoverAsync(Setup.NewPassword()));

        Assert.Equal(StatusCode.NotFound, refused.StatusCode);
        Assert.Contains("has no record to recover; register first", refused.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Delete_WithoutARecord_IsNotFoundSayingSo()
    {
        var refused = await Assert.ThrowsAsync<RpcException>(() => Daemon.CreateClient("nobody").DeleteAsync());

        Assert.Equal(StatusCode.NotFound, refused.StatusCode);
        Assert.Contains("there is no record for", refused.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task EveryUserCall_WithATokenNoTenantSigned_IsUnauthenticated_AndChangesNothing()
    {
        var honest = Daemon.CreateClient("alice");
        var password = Setup.NewPassword();
        await honest.RegisterAsync(password, Setup.NewBackupKey());
        var forged = new VaultClient(Daemon.CreateChannel().CreateCallInvoker(), _ => ValueTask.FromResult("not-a-jwt"));

        var calls = new (string Name, Func<Task> Call)[]
        {
            ("register", () => forged.RegisterAsync(Setup.NewPassword(), Setup.NewBackupKey(), replaceExisting: true)),
            ("recover", () => forged.RecoverAsync(password)),
            ("status", () => forged.GetStatusAsync()),
            ("delete", () => forged.DeleteAsync()),
        };
        foreach (var (name, call) in calls)
        {
            var refused = await Assert.ThrowsAsync<RpcException>(call);
            Assert.True(refused.StatusCode == StatusCode.Unauthenticated, $"{name}: {refused.Status}");
        }

        var status = await honest.GetStatusAsync();
        Assert.True(status.Registered);
        Assert.Equal(status.GuessLimit, status.GuessesRemaining);
    }

    [Fact]
    public async Task TheSameUserNameOfAnotherTenant_IsAnotherUser()
    {
        await Daemon.CreateClient("alice").RegisterAsync(Setup.NewPassword(), Setup.NewBackupKey());

        var otherTenantsAlice = await Daemon.CreateClient("alice", DaemonSetup.OtherTenant).GetStatusAsync();

        Assert.False(otherTenantsAlice.Registered);
    }
}
