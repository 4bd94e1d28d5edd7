using HsmVault.Vault.State;

namespace HsmVault.Vault;

/// <summary>
/// The log of a fleet of one: a command is committed when this member's state has applied
/// it durably (SQLite, synchronous=FULL), and every read is current by construction.
/// </summary>
public sealed class SingleMemberVaultLog(VaultStateMachine state) : IVaultLog, IDisposable
{
    private readonly SemaphoreSlim _writer = new(1, 1);

    /// <inheritdoc/>
    public async Task<CommandResult> SubmitAsync(VaultCommand command, CancellationToken cancellationToken)
    {
        var encoded = VaultCommandCodec.Encode(command);
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
