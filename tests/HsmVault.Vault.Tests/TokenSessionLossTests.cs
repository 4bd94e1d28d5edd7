using System.Reflection;
using HsmVault.Hsm;
using Net.Pkcs11Interop.HighLevelAPI;

namespace HsmVault.Vault.Tests;

/// <summary>The token drops every session in the middle of a recovery; the vault carries on without a restart.</summary>
public sealed class TokenSessionLossTests : IDisposable
{
    private static readonly UserIdentity Alice = new("tenant", "alice");
    private readonly VaultHarness _vault = new();

    [Fact]
    public async Task Recovery_TokenSessionsClosedBetweenStartAndFinish_CompletesAndCountsOnce()
    {
        var backupKey = Bytes.Random(32);
        await _vault.RegisterAsync(Alice, "password", backupKey);
        CloseAllTokenSessions(_vault.Token);
        var (start, client) = await _vault.StartAsync(Alice, "password");
        Assert.Equal(9, start.GuessesRemaining);

        CloseAllTokenSessions(_vault.Token);
        var finish = await _vault.Service.FinishRecoveryAsync(Alice, start.SessionId, client!.Ke3, CancellationToken.None);

        Assert.Equal(RecoveryOutcome.Success, finish.Outcome);
        Assert.Equal(10, finish.GuessesRemaining);
        CloseAllTokenSessions(_vault.Token);
        Assert.Equal(backupKey, (await _vault.RecoverAsync(Alice, "password")).BackupKey);
        Assert.Equal(10, (await _vault.StatusAsync(Alice)).GuessesRemaining);
    }

    public void Dispose() => _vault.Dispose();

    /// <summary>
    /// C_CloseAllSessions on the token's slot, as a token reset or another process would cause.
    /// <c>Pkcs11VaultToken.CurrentSlot</c> is an internal test hook of HsmVault.Hsm (visible to its
    /// own tests only), so it is reached by reflection here; if it is renamed this test fails loudly.
    /// </summary>
    private static void CloseAllTokenSessions(Pkcs11VaultToken token)
    {
        var property = typeof(Pkcs11VaultToken).GetProperty("CurrentSlot", BindingFlags.Instance | BindingFlags.NonPublic)
            ?? throw new InvalidOperationException("Pkcs11VaultToken.CurrentSlot test hook is gone");
        var slot = (ISlot)property.GetValue(token)!;
        slot.CloseAllSessions();
    }
}
