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

    /// <summary>
    /// Fault seam: for a command this returns true for, the log commits it and then answers
    /// Unavailable, as Raft does when leadership moves mid-commit (the outcome is unknown to the proposer).
    /// </summary>
    public Func<VaultCommand, bool>? LoseAnswer { get; set; }

    /// <summary>Fault seam: this many of the next read barriers fail with Unavailable (no majority to confirm leadership).</summary>
    public int FailReadBarriers { get; set; }

    /// <summary>Fault seam: while set, a submission waits for it before it commits (a slow majority).</summary>
    public Task? Hold { get; set; }

    /// <inheritdoc/>
    public async Task<CommandResult> SubmitAsync(SignedCommand command, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(command);
        var encoded = command.Encode();
        if (Hold is { } hold)
        {
            await hold;
        }

        await _writer.WaitAsync(cancellationToken);
        CommandResult result;
        try
        {
            result = VaultCommandCodec.DecodeResult(state.Apply(state.AppliedIndex + 1, encoded));
        }
        finally
        {
            _writer.Release();
        }

        if (LoseAnswer?.Invoke(VaultCommandCodec.Decode(command.Body)) == true)
        {
            throw new VaultException(VaultError.Unavailable, "the leader changed while committing; it may or may not have taken effect");
        }

        return result;
    }

    /// <inheritdoc/>
    public Task ReadBarrierAsync(CancellationToken cancellationToken)
    {
        if (FailReadBarriers > 0)
        {
            FailReadBarriers--;
            throw new VaultException(VaultError.Unavailable, "no majority confirmed this member's leadership");
        }

        return Task.CompletedTask;
    }

    /// <inheritdoc/>
    public void Dispose() => _writer.Dispose();
}
