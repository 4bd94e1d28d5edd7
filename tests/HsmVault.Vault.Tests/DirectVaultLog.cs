using HsmVault.Vault.Signing;
using HsmVault.Vault.State;

namespace HsmVault.Vault.Tests;

/// <summary>
/// The vault's log without Raft, for testing <see cref="VaultService"/> on its own: a command
/// is committed when the state has applied it durably (SQLite, synchronous=FULL), and every
/// read is current by construction. The daemon always goes through Raft, even alone.
/// </summary>
public sealed class DirectVaultLog(VaultStateMachine state) : IVaultLog, IDisposable
{
    private readonly SemaphoreSlim _writer = new(1, 1);

    /// <inheritdoc/>
    public async Task<CommandResult> SubmitAsync(SignedCommand command, CancellationToken cancellationToken)
    {
        var encoded = command.Encode();
        await _writer.WaitAsync(cancellationToken);
        try
        {
            return VaultCommandCodec.DecodeResult(state.Apply(state.AppliedIndex + 1, encoded));
        }
        finally
        {
            _writer.Release();
        }
    }

    /// <inheritdoc/>
    public Task ReadBarrierAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <inheritdoc/>
    public void Dispose() => _writer.Dispose();
}
