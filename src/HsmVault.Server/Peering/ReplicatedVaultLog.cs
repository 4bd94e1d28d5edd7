using Grpc.Core;
using Google.Protobuf;
using HsmVault.Consensus;
using HsmVault.Protocol.V1;
using HsmVault.Vault;
using HsmVault.Vault.Signing;
using HsmVault.Vault.State;
using Microsoft.Extensions.Options;

namespace HsmVault.Server.Peering;

/// <summary>
/// The vault's writes and read barriers through Raft. On the leader they go to the local
/// <see cref="RaftHost"/>; a follower forwards writes to the leader and asks it for a read
/// index (thesis §6.4), then waits until it has applied that far itself. A member that cannot
/// reach a majority refuses with Unavailable rather than answer from stale state.
/// </summary>
/// <remarks>
/// A write is retried only when it certainly did not happen (no leader known yet, or the
/// receiver refused it as not the leader before proposing). A write whose fate is unknown
/// (a timeout, a lost connection, a leader change mid-commit) is reported as Unavailable and
/// never blindly resent: resending a charge could spend a second guess.
/// </remarks>
public sealed class ReplicatedVaultLog(
    RaftHost host,
    PeerConnections peers,
    VaultStateMachine state,
    PeerLinkGate gate,
    IOptions<PeerOptions> options,
    IOptions<VaultOptions> vault,
    TimeProvider time) : IVaultLog
{
    private readonly string _self = vault.Value.MemberId;

    private static readonly TimeSpan RetryPause = TimeSpan.FromMilliseconds(25);

    /// <inheritdoc/>
    public async Task<CommandResult> SubmitAsync(SignedCommand command, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(command);
        var encoded = command.Encode();
        var deadline = time.GetUtcNow() + options.Value.CommitTimeout;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (host.IsLeader)
            {
                try
                {
                    return VaultCommandCodec.DecodeResult(await host.ProposeAsync(encoded, cancellationToken));
                }
                catch (Exception e) when (e is NotLeaderException or QuorumUnavailableException)
                {
                    throw Unavailable("this member lost its majority while committing the write; it may or may not have taken effect, so check before retrying", e);
                }
            }

            if (host.LeaderId is { } leader && leader != _self && gate.IsOpen(leader))
            {
                try
                {
                    var response = await peers.ClientFor(leader).ForwardAsync(
                        new ForwardRequest { Command = ByteString.CopyFrom(encoded) },
                        deadline: deadline.UtcDateTime,
                        cancellationToken: cancellationToken);
                    return VaultCommandCodec.DecodeResult(response.Result.Span);
                }
                catch (RpcException e) when (e.StatusCode == StatusCode.FailedPrecondition)
                {
                    // The receiver was no longer the leader and proposed nothing: safe to retry.
                }
                catch (RpcException e)
                {
                    throw Unavailable($"the leader ({leader}) did not confirm the write ({e.StatusCode}); it may or may not have taken effect", e);
                }
            }

            await PauseOrGiveUpAsync(deadline, cancellationToken);
        }
    }

    /// <inheritdoc/>
    public async Task ReadBarrierAsync(CancellationToken cancellationToken)
    {
        var deadline = time.GetUtcNow() + options.Value.CommitTimeout;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            try
            {
                if (host.IsLeader)
                {
                    await host.ReadBarrierAsync(cancellationToken);
                    return;
                }

                if (host.LeaderId is { } leader && leader != _self && gate.IsOpen(leader))
                {
                    var response = await peers.ClientFor(leader).ReadIndexAsync(new ReadIndexRequest(), deadline: deadline.UtcDateTime, cancellationToken: cancellationToken);
                    using var timeout = new CancellationTokenSource(Remaining(deadline));
                    using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
                    await state.WaitForAppliedAsync(response.Index, linked.Token);
                    return;
                }
            }
            catch (NotLeaderException)
            {
                // Leadership moved between the check and the barrier: ask again.
            }
            catch (QuorumUnavailableException e)
            {
                throw Unavailable("this member cannot confirm with a majority that its state is current", e);
            }
            catch (RpcException e) when (e.StatusCode is StatusCode.FailedPrecondition or StatusCode.Unavailable)
            {
                // The member we asked no longer leads, or is gone (it may have crashed and the
                // others not yet elected anyone). A read barrier has no effect, so asking again
                // until the deadline is always safe.
            }
            catch (RpcException e)
            {
                throw Unavailable($"this member cannot confirm with the leader that its state is current (leader answered {e.StatusCode}: {e.Status.Detail})", e);
            }
            catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
            {
                throw Unavailable("this member did not catch up with the leader's commit index in time", e);
            }

            await PauseOrGiveUpAsync(deadline, cancellationToken);
        }
    }

    private async Task PauseOrGiveUpAsync(DateTimeOffset deadline, CancellationToken cancellationToken)
    {
        if (time.GetUtcNow() >= deadline)
        {
            throw Unavailable("no leader: this member cannot reach a majority of the fleet", inner: null);
        }

        await Task.Delay(RetryPause, time, cancellationToken);
    }

    private TimeSpan Remaining(DateTimeOffset deadline)
    {
        var left = deadline - time.GetUtcNow();
        return left > TimeSpan.Zero ? left : TimeSpan.FromMilliseconds(1);
    }

    private static VaultException Unavailable(string message, Exception? inner) =>
        new(VaultError.Unavailable, message + "; retry later or use another member", inner);
}
