using Grpc.Core;
using HsmVault.Protocol.Bundles;
using HsmVault.Protocol.V1;
using HsmVault.Transparency.Bundles;
using ProtoVault = HsmVault.Protocol.V1.Vault;

namespace HsmVault.Client;

/// <summary>
/// What a client trusts before it has seen any fleet (the witnesses' and the operator's keys, and a
/// "k of n" witness policy), and where it remembers what it saw (the trust state: highest epoch per
/// namespace, last checkpoint per witness). With it, <see cref="VaultClient"/> verifies the fleet's
/// validation bundle before it sends a password-derived byte.
/// </summary>
public sealed class FleetTrust
{
    private readonly BundleVerifier _verifier;
    private readonly Lock _stateLock = new();
    private ClientTrustState? _inMemoryState;

    /// <summary>Creates the trust settings.</summary>
    /// <param name="policy">The pinned keys and the witness policy.</param>
    /// <param name="trustStateFile">
    /// The trust state's file (README, "Client trust state"), read before and written after every
    /// verification; null keeps it in this object only, so a new process starts from nothing.
    /// </param>
    /// <param name="time">The clock for not-after (the system clock by default).</param>
    /// <exception cref="ArgumentException">The policy cannot be met.</exception>
    public FleetTrust(BundleTrustPolicy policy, string? trustStateFile = null, TimeProvider? time = null)
    {
        _verifier = new BundleVerifier(policy, time);
        Policy = policy;
        TrustStateFile = trustStateFile;
    }

    /// <summary>The pinned keys and the witness policy.</summary>
    public BundleTrustPolicy Policy { get; }

    /// <summary>Where the trust state is kept, or null (in memory).</summary>
    public string? TrustStateFile { get; }

    /// <summary>
    /// Fetches the fleet's bundle from the member behind <paramref name="rpc"/> with the
    /// consistency proofs from the checkpoints seen before, verifies it (<see cref="BundleVerifier"/>),
    /// and records it in the trust state.
    /// </summary>
    /// <exception cref="BundleRefusedException">The bundle is refused, or the member serves none; the message says why.</exception>
    /// <exception cref="InvalidDataException">The trust state file exists but is not one.</exception>
    internal async Task<VerifiedBundle> VerifyAsync(ProtoVault.VaultClient rpc, CancellationToken cancellationToken)
    {
        var state = LoadState();
        var request = new GetValidationBundleRequest();
        foreach (var key in Policy.WitnessKeys.DistinctBy(k => k.Name))
        {
            if (state.LastCheckpoint(key.Name) is { } seen)
            {
                request.KnownCheckpoints.Add(new KnownCheckpoint { WitnessKeyName = key.Name, TreeSize = seen.TreeSize });
            }
        }

        GetValidationBundleResponse response;
        try
        {
            response = await rpc.GetValidationBundleAsync(request, cancellationToken: cancellationToken);
        }
        catch (RpcException e) when (RefusalTrailer.Of(e) == RefusalReason.NoBundle || e.StatusCode == StatusCode.Unimplemented)
        {
            throw new BundleRefusedException(BundleRefusal.NotServed,
                $"the member serves no validation bundle ({e.Status.Detail}), so nothing shows it is a fleet your pinned witness and operator keys vouch for", e);
        }

        var proofs = new Dictionary<ConsistencyProofRequest, IReadOnlyList<byte[]>>();
        foreach (var proof in response.ConsistencyProofs)
        {
            proofs[new ConsistencyProofRequest(proof.WitnessKeyName, proof.OldSize, proof.NewSize)] = [.. proof.Proof.Select(p => p.ToByteArray())];
        }

        // A successor is verified first and in full; the fleet that names it is then checked as the
        // fleet its users leave (BundleVerifier: its not-after and the highest epoch seen do not apply).
        var successor = response.Successor is { } next ? _verifier.Verify(BundleMessages.ToModel(next), state, proofs) : null;
        var verified = _verifier.Verify(BundleMessages.ToModel(response.SignedBundle ?? new SignedBundle()), state, proofs, successor?.Bundle) with { Successor = successor };
        lock (_stateLock)
        {
            // Read again: another process (or call) may have moved the state on meanwhile.
            var latest = LoadState();
            latest.Accept(verified);
            if (successor is not null)
            {
                latest.Accept(successor);
            }

            SaveState(latest);
        }

        return verified;
    }

    private ClientTrustState LoadState()
    {
        lock (_stateLock)
        {
            return TrustStateFile is null ? (_inMemoryState ??= new ClientTrustState()) : ClientTrustState.Load(TrustStateFile);
        }
    }

    private void SaveState(ClientTrustState state)
    {
        if (TrustStateFile is null)
        {
            _inMemoryState = state;
        }
        else
        {
            state.Save(TrustStateFile);
        }
    }
}
