using System.Globalization;
using System.Security.Cryptography;
using HsmVault.Hsm;
using HsmVault.Hsm.Internal;
using HsmVault.Testing;
using HsmVault.Vault;
using HsmVault.Vault.Tests;
using Net.Pkcs11Interop.Common;

namespace HsmVault.Tokens.Tests;

/// <summary>
/// A token really pulled out and put back (an NSS database closed and opened again in another
/// slot, see <see cref="NssRemovableToken"/>): found again by its label under its new slot id;
/// another token under the same name is refused, never used; no guess is refunded.
/// </summary>
public sealed class TokenReinsertionTests
{
    private static readonly UserIdentity Alice = new("tenant", "alice");
    private static int _counter;

    [Fact]
    public void PulledOutAndPutBackInANewSlot_IsFoundByItsLabelAndServes()
    {
        var removable = NssRemovableToken.Create(UniqueLabel("reinserted"));
        var options = removable.Insert();
        TokenProvisioner.ProvisionFleetKeys(options);
        using var token = Pkcs11VaultToken.Open(options);
        var blob = token.Seal("secret"u8, "ad"u8);
        var firstSlot = token.Description.SlotId;

        removable.Remove();
        var refused = Assert.Throws<TokenUnavailableException>(() => token.Unseal(blob, "ad"u8));
        Assert.Contains($"token '{removable.Label}' is unavailable", refused.Message, StringComparison.Ordinal);
        Assert.Throws<TokenUnavailableException>(() => token.Sign("m"u8));

        removable.Insert();
        Assert.Equal("secret"u8.ToArray(), token.Unseal(blob, "ad"u8));
        Assert.NotEqual(firstSlot, token.Description.SlotId);
        Assert.Equal(removable.SlotId, token.Description.SlotId);
        Assert.True(NssTokenTests.VerifyP256(token.SigningKey.PublicKey, "m"u8.ToArray(), token.Sign("m"u8)));
    }

    [Fact]
    public void ImpostorWithTheSameLabelAndSerial_IsRefused_ThenTheRightTokenIsTakenBack()
    {
        var label = UniqueLabel("impostor");
        var real = NssRemovableToken.Create(label);
        var options = real.Insert();
        var seed = RandomNumberGenerator.GetBytes(64);
        TokenProvisioner.ImportOprfSeed(options, seed);
        TokenProvisioner.ProvisionFleetKeys(options, new FleetKeyGenerationOptions { KeepExisting = true });
        using var token = Pkcs11VaultToken.Open(options);
        var blob = token.Seal("secret"u8, []);
        real.Remove();

        // Same label, same serial (NSS gives every database 0000000000000000), keys of its own.
        var impostor = NssRemovableToken.Create(label);
        TokenProvisioner.ProvisionFleetKeys(impostor.Insert());
        var output = new byte[32];
        var refused = Assert.Throws<TokenUnavailableException>(() => token.ExpandOprfSeed("alice"u8, output));
        Assert.Contains("is not the token this daemon opened at start-up", refused.Message, StringComparison.Ordinal);
        Assert.Throws<TokenUnavailableException>(() => token.Unseal(blob, []));
        Assert.Throws<TokenUnavailableException>(() => token.SignAsMember("m"u8));

        impostor.Remove();
        real.Insert();
        token.ExpandOprfSeed("alice"u8, output);
        Assert.Equal(HMACSHA512.HashData(seed, "alice\u0001"u8.ToArray()).AsSpan(0, 32).ToArray(), output);
        Assert.Equal("secret"u8.ToArray(), token.Unseal(blob, []));
    }

    [Fact]
    public void SoftHsm_AnotherTokenWithTheSameLabel_ReconnectFindsTheTokenFirstOpenedBySerial()
    {
        var provisioned = SoftHsmEnvironment.Shared.CreateProvisionedToken();
        var byLabel = new TokenOptions
        {
            ModulePath = provisioned.ModulePath,
            TokenLabel = provisioned.TokenLabel,
            PinFile = provisioned.PinFile,
            MaxConcurrentOperations = provisioned.MaxConcurrentOperations,
        };
        using var token = Pkcs11VaultToken.Open(byLabel);
        var blob = token.Seal("secret"u8, []);

        // A second token under the same label, with its own serial; then the first drops its sessions.
        var otherSerial = InitializeFreeSoftHsmSlot(provisioned.TokenLabel!);
        Assert.NotEqual(provisioned.TokenSerial, otherSerial);
        var ambiguous = Assert.Throws<TokenConfigurationException>(() => Pkcs11VaultToken.Open(byLabel));
        Assert.Contains("is ambiguous", ambiguous.Message, StringComparison.Ordinal);
        token.CurrentSlot.CloseAllSessions();

        Assert.Equal("secret"u8.ToArray(), token.Unseal(blob, []));
        Assert.Equal(provisioned.TokenSerial, token.Description.SerialNumber);
    }

    [Fact]
    public async Task Recovery_TokenPulledOutAndBackInANewSlot_RefusedWhileOut_NoGuessRefunded()
    {
        var removable = NssRemovableToken.Create(UniqueLabel("vault"));
        var options = removable.Insert();
        TokenProvisioner.ProvisionFleetKeys(options);
        using var vault = new VaultHarness(openToken: () => Pkcs11VaultToken.Open(options));
        await vault.RegisterAsync(Alice, "password", Bytes.Random(32));
        Assert.Equal(RecoveryOutcome.WrongPassword, (await vault.RecoverAsync(Alice, "wrong")).Finish.Outcome);

        removable.Remove();
        var refused = await Assert.ThrowsAsync<VaultException>(() => vault.StartAsync(Alice, "wrong"));
        Assert.Equal(VaultError.Unavailable, refused.Error);
        removable.Insert();

        // The refused attempt may have been charged before the token was needed; nothing is given back.
        var afterRefusal = (await vault.StatusAsync(Alice)).GuessesRemaining;
        Assert.InRange(afterRefusal, 8, 9);
        Assert.Equal(RecoveryOutcome.WrongPassword, (await vault.RecoverAsync(Alice, "wrong")).Finish.Outcome);
        Assert.Equal(afterRefusal - 1, (await vault.StatusAsync(Alice)).GuessesRemaining);
        Assert.Equal(RecoveryOutcome.Success, (await vault.RecoverAsync(Alice, "password")).Finish.Outcome);
    }

    [Fact]
    public async Task Recovery_ImpostorTokenInTheSlot_RightPasswordIsRefusedUnavailable_NeverAnsweredWrong()
    {
        var label = UniqueLabel("vault-impostor");
        var real = NssRemovableToken.Create(label);
        var options = real.Insert();
        TokenProvisioner.ProvisionFleetKeys(options);
        using var vault = new VaultHarness(openToken: () => Pkcs11VaultToken.Open(options));
        var backupKey = Bytes.Random(32);
        await vault.RegisterAsync(Alice, "password", backupKey);
        real.Remove();
        var impostor = NssRemovableToken.Create(label);
        TokenProvisioner.ProvisionFleetKeys(impostor.Insert());

        // With the impostor's OPRF seed the right password would come back wrong (and cost a
        // guess); it must not come back at all.
        for (var i = 0; i < 3; i++)
        {
            var refused = await Assert.ThrowsAsync<VaultException>(() => vault.StartAsync(Alice, "password"));
            Assert.Equal(VaultError.Unavailable, refused.Error);
        }

        impostor.Remove();
        real.Insert();
        var right = await vault.RecoverAsync(Alice, "password");
        Assert.Equal(RecoveryOutcome.Success, right.Finish.Outcome);
        Assert.Equal(backupKey, right.BackupKey);
    }

    /// <summary>
    /// A token in SoftHSM2's free slot under a label already taken (which
    /// <see cref="TokenInitializer"/> refuses to do); returns its serial.
    /// </summary>
    private static string InitializeFreeSoftHsmSlot(string label)
    {
        var library = Pkcs11Modules.Get(SoftHsmEnvironment.DefaultModulePath);
        lock (SlotListGate.Gate)
        {
            var free = library.GetSlotList(SlotsType.WithTokenPresent).First(s => !s.GetTokenInfo().TokenFlags.TokenInitialized);
            free.InitToken("so-pin-of-the-other"u8.ToArray(), System.Text.Encoding.UTF8.GetBytes(label));
            return free.GetTokenInfo().SerialNumber.Trim();
        }
    }

    private static string UniqueLabel(string purpose) =>
        string.Create(CultureInfo.InvariantCulture, $"{purpose}-{Environment.ProcessId % 100000}-{Interlocked.Increment(ref _counter)}");
}
