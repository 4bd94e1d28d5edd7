using System.Collections.Concurrent;
using Grpc.Core;
using Grpc.Net.Client;
using HsmVault.Protocol.V1;
using HsmVault.Transparency;
using HsmVault.Transparency.Notes;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using WitnessClient = HsmVault.Protocol.V1.Witness.WitnessClient;

namespace HsmVault.Server.Bundles;

/// <summary>
/// Fetches, from the configured witnesses (<see cref="BundleOptions.Witnesses"/>), the consistency
/// proofs a client needs between checkpoints it saw before and the ones in the served bundle. A
/// member only relays: the client verifies every proof against checkpoints signed by witnesses it
/// pins, so a wrong proof costs it nothing but a refusal. A witness that cannot be reached leaves
/// its proof out (the client then names that witness's checkpoint as unproven).
/// </summary>
public sealed partial class WitnessConsistencyProofs : IDisposable
{
    /// <summary>Most known checkpoints one GetValidationBundle may name.</summary>
    public const int MaxKnownCheckpoints = 16;

    private static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(5);

    private readonly List<(string Address, GrpcChannel Channel, WitnessClient Client)> _witnesses;
    private readonly ConcurrentDictionary<string, string> _originByAddress = new(StringComparer.Ordinal);
    private readonly ILogger<WitnessConsistencyProofs> _logger;

    /// <summary>Channels to the configured witnesses (opened lazily by gRPC).</summary>
    public WitnessConsistencyProofs(IOptions<BundleOptions> options, ILogger<WitnessConsistencyProofs> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _logger = logger;
        _witnesses = [.. options.Value.Witnesses.Select(address =>
        {
            var channel = GrpcChannel.ForAddress(address);
            return (address, channel, new WitnessClient(channel));
        })];
    }

    /// <summary>
    /// For each checkpoint the client knows whose witness attests <paramref name="served"/>, the
    /// proof between its size and the size of that witness's checkpoint in the bundle.
    /// </summary>
    /// <exception cref="RpcException">INVALID_ARGUMENT: too many known checkpoints, or one without a witness name.</exception>
    public async Task<IReadOnlyList<BundleConsistencyProof>> ForAsync(
        ServedBundleState served, IReadOnlyList<KnownCheckpoint> known, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(served);
        ArgumentNullException.ThrowIfNull(known);
        if (known.Count > MaxKnownCheckpoints)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"known_checkpoints names {known.Count} checkpoints; at most {MaxKnownCheckpoints} are accepted"));
        }

        if (known.Any(k => string.IsNullOrEmpty(k.WitnessKeyName) || k.WitnessKeyName.Length > 256))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "every known checkpoint needs a witness_key_name of 1..256 characters"));
        }

        var proofs = new List<BundleConsistencyProof>();
        foreach (var checkpoint in known.DistinctBy(k => k.WitnessKeyName))
        {
            var attestation = served.Message.Attestations.FirstOrDefault(a => a.WitnessKeyName == checkpoint.WitnessKeyName);
            if (attestation is null || BundleTreeSize(attestation) is not { } bundleSize || checkpoint.TreeSize == 0 || checkpoint.TreeSize == bundleSize)
            {
                continue;
            }

            var (older, newer) = (Math.Min(checkpoint.TreeSize, bundleSize), Math.Max(checkpoint.TreeSize, bundleSize));
            if (await FetchAsync(checkpoint.WitnessKeyName, older, newer, cancellationToken).ConfigureAwait(false) is { } proof)
            {
                var answer = new BundleConsistencyProof { WitnessKeyName = checkpoint.WitnessKeyName, OldSize = older, NewSize = newer };
                answer.Proof.AddRange(proof);
                proofs.Add(answer);
            }
        }

        return proofs;
    }

    /// <inheritdoc/>
    public void Dispose() => _witnesses.ForEach(w => w.Channel.Dispose());

    private static ulong? BundleTreeSize(Protocol.V1.WitnessAttestation attestation)
    {
        try
        {
            return Checkpoint.ParseText(SignedNote.UnverifiedText(attestation.Checkpoint)).TreeSize;
        }
        catch (TransparencyException)
        {
            return null;
        }
    }

    private async Task<IReadOnlyList<Google.Protobuf.ByteString>?> FetchAsync(string witnessKeyName, ulong older, ulong newer, CancellationToken cancellationToken)
    {
        foreach (var (address, _, client) in _witnesses)
        {
            try
            {
                if (await OriginAsync(address, client, cancellationToken).ConfigureAwait(false) != witnessKeyName)
                {
                    continue;
                }

                var response = await client.GetConsistencyProofAsync(
                    new GetConsistencyProofRequest { OldSize = older, NewSize = newer },
                    deadline: DateTime.UtcNow + CallTimeout, cancellationToken: cancellationToken).ConfigureAwait(false);
                return response.Proof;
            }
            catch (RpcException e)
            {
                Log.WitnessUnreachable(_logger, address, e.Status.StatusCode, e.Status.Detail);
            }
        }

        return null;
    }

    /// <summary>The origin (= note key name) of the witness at <paramref name="address"/>, from its latest checkpoint.</summary>
    private async Task<string?> OriginAsync(string address, WitnessClient client, CancellationToken cancellationToken)
    {
        if (_originByAddress.TryGetValue(address, out var origin))
        {
            return origin;
        }

        var latest = await client.GetCheckpointAsync(new GetCheckpointRequest(), deadline: DateTime.UtcNow + CallTimeout, cancellationToken: cancellationToken)
            .ConfigureAwait(false);
        try
        {
            origin = Checkpoint.ParseText(SignedNote.UnverifiedText(latest.Checkpoint)).Origin;
        }
        catch (TransparencyException)
        {
            return null;
        }

        _originByAddress[address] = origin;
        return origin;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1014, EventName = "WitnessUnreachable", Level = LogLevel.Warning,
            Message = "Witness {Address} did not answer a consistency proof request for a client ({StatusCode}: {Detail}); the proof is left out")]
        public static partial void WitnessUnreachable(ILogger logger, string address, StatusCode statusCode, string detail);
    }
}
