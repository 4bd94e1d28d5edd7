using HsmVault.Crypto.Opaque;

using HsmVault.Testing.Opaque;

namespace HsmVault.Vault.Tests;

/// <summary>
/// StartRegistration costs no guess. If it evaluated the OPRF under the key a stored record
/// uses, anyone holding the user's JWT could collect evaluations for a whole dictionary and,
/// after one StartRecovery, test them all offline. Each registration therefore has its own
/// OPRF key (a nonce in the credential identifier, carried in a sealed ticket).
/// </summary>
public sealed class RegistrationOracleTests : IDisposable
{
    private static readonly UserIdentity Alice = new("tenant-a", "alice");
    private readonly VaultHarness _vault = new();

    [Fact]
    public async Task StartRegistration_ForARegisteredUser_DoesNotEvaluateUnderTheStoredRecordsKey()
    {
        await _vault.RegisterAsync(Alice, "correct horse", Bytes.Random(32));
        var blind = Bytes.Filled(32, 0);
        blind[0] = 7; // A fixed, valid scalar: the same blinded element in both messages.
        var client = new OpaqueClient(VaultService.OpaqueConfigurationFor(_vault.Options),
            new ScriptedRandom(blind, blind, Bytes.Random(32), Bytes.Random(32)));
        var password = VaultHarness.Password("a dictionary word");
        var registration = client.CreateRegistrationRequest(password);
        var login = client.GenerateKe1(password);
        Assert.Equal(registration.RegistrationRequest, login.Ke1[..32]);

        var oracle = _vault.Service.StartRegistration(Alice, registration.RegistrationRequest);
        var recovery = await _vault.Service.StartRecoveryAsync(Alice, login.Ke1, [], CancellationToken.None);

        // Same blinded element, different evaluation: the keys differ.
        Assert.NotEqual(recovery.Ke2[..32], oracle.RegistrationResponse[..32]);
        registration.State.Dispose();
        login.State.Dispose();
    }

    [Fact]
    public void StartRegistration_TwiceForOneUser_EvaluatesUnderTwoKeys()
    {
        var request = new OpaqueClient(VaultService.OpaqueConfigurationFor(_vault.Options)).CreateRegistrationRequest(VaultHarness.Password("pw"));

        var first = _vault.Service.StartRegistration(Alice, request.RegistrationRequest);
        var second = _vault.Service.StartRegistration(Alice, request.RegistrationRequest);

        Assert.NotEqual(first.RegistrationResponse[..32], second.RegistrationResponse[..32]);
        Assert.NotEqual(first.RegistrationTicket, second.RegistrationTicket);
        request.State.Dispose();
    }

    [Fact]
    public async Task FinishRegistration_WithAnotherUsersTicket_IsInvalidArgumentAndChangesNothing()
    {
        var bob = new UserIdentity("tenant-a", "bob");
        var (bobsTicket, _, _) = _vault.PrepareRegistration(bob, "pw", Bytes.Random(32));
        var (_, record, secret) = _vault.PrepareRegistration(Alice, "pw", Bytes.Random(32));

        var e = await Assert.ThrowsAsync<VaultException>(() => _vault.Service.FinishRegistrationAsync(Alice, bobsTicket, record, secret, 0, false, 0, null, CancellationToken.None));

        Assert.Equal(VaultError.InvalidArgument, e.Error);
        Assert.Contains("registration_ticket", e.Message, StringComparison.Ordinal);
        Assert.False((await _vault.Service.GetStatusAsync(Alice, CancellationToken.None)).Registered);
    }

    [Fact]
    public async Task FinishRegistration_WithAForgedOrMissingTicket_IsInvalidArgument()
    {
        var (ticket, record, secret) = _vault.PrepareRegistration(Alice, "pw", Bytes.Random(32));
        ticket[^1] ^= 1;

        foreach (var bad in new[] { ticket, [], Bytes.Random(40) })
        {
            var e = await Assert.ThrowsAsync<VaultException>(() => _vault.Service.FinishRegistrationAsync(Alice, bad, record, secret, 0, false, 0, null, CancellationToken.None));
            Assert.Equal(VaultError.InvalidArgument, e.Error);
        }

        Assert.False((await _vault.Service.GetStatusAsync(Alice, CancellationToken.None)).Registered);
    }

    public void Dispose() => _vault.Dispose();
}
