using HsmVault.Vault.Signing;
using HsmVault.Vault.State;

namespace HsmVault.Vault;

/// <summary>
/// How the vault writes: every change is a command that a majority of the fleet commits
/// before it is applied to <see cref="VaultStateMachine"/> on each member.
/// </summary>
public interface IVaultLog
{
    /// <summary>
    /// Commits <paramref name="command"/> (durable on a majority) and returns what apply
    /// answered on this member.
    /// </summary>
    /// <exception cref="VaultException">Unavailable when no majority can be reached, or the outcome is unknown.</exception>
    Task<CommandResult> SubmitAsync(SignedCommand command, CancellationToken cancellationToken);

    /// <summary>
    /// Waits until this member's state reflects every write committed before the call
    /// (Raft's ReadIndex), so that a read which decides something is never stale.
    /// </summary>
    /// <exception cref="VaultException">Unavailable when this member cannot confirm it is current.</exception>
    Task ReadBarrierAsync(CancellationToken cancellationToken);
}
