using HsmVault.Consensus;
using HsmVault.Vault;
using HsmVault.Vault.Signing;
using HsmVault.Vault.State;

namespace HsmVault.Server.Peering;

/// <summary>
/// The vault's writes and read barriers through Raft, by the member's <see cref="LeaderRouter"/> (which forwards to the
/// leader from a follower, over <see cref="GrpcLeaderLink"/>): this adapter encodes commands, decodes results, and
/// turns the router's refusals into Unavailable. A write whose fate is unknown is reported so, never resent.
/// </summary>
public sealed class ReplicatedVaultLog(LeaderRouter router) : IVaultLog
{
    /// <inheritdoc/>
    public async Task<CommandResult> SubmitAsync(SignedCommand command, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(command);
        try
        {
            return VaultCommandCodec.DecodeResult(await router.SubmitAsync(command.Encode(), cancellationToken));
        }
        catch (Exception e) when (e is OutcomeUnknownException or QuorumUnavailableException)
        {
            throw Unavailable(e);
        }
    }

    /// <inheritdoc/>
    public async Task ReadBarrierAsync(CancellationToken cancellationToken)
    {
        try
        {
            await router.ReadBarrierAsync(cancellationToken);
        }
        catch (QuorumUnavailableException e)
        {
            throw Unavailable(e);
        }
    }

    private static VaultException Unavailable(Exception inner) =>
        new(VaultError.Unavailable, inner.Message + "; retry later or use another member", inner);
}
