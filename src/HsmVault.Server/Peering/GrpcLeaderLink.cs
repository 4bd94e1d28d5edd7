using Grpc.Core;
using Google.Protobuf;
using HsmVault.Consensus;
using HsmVault.Protocol.V1;

namespace HsmVault.Server.Peering;

/// <summary>
/// The <see cref="ILeaderLink"/> over the peer API's Forward and ReadIndex calls. It reads the leader's answer by
/// <see cref="PeerGrpcService"/>'s one mapping of refusals to statuses: FAILED_PRECONDITION means the receiver does not
/// lead and proposed nothing, UNAVAILABLE that the leader could not be reached or had no majority; any other status
/// may follow a write that took effect.
/// </summary>
public sealed class GrpcLeaderLink(PeerConnections peers) : ILeaderLink
{
    /// <inheritdoc/>
    public async Task<byte[]> ForwardAsync(string leader, byte[] command, DateTimeOffset deadline, CancellationToken cancellationToken)
    {
        try
        {
            var response = await peers.ClientFor(leader).ForwardAsync(
                new ForwardRequest { Command = ByteString.CopyFrom(command) },
                deadline: deadline.UtcDateTime,
                cancellationToken: cancellationToken);
            return response.Result.ToByteArray();
        }
        catch (RpcException e)
        {
            throw Classify(e, e.StatusCode.ToString());
        }
    }

    /// <inheritdoc/>
    public async Task<ulong> ReadIndexAsync(string leader, DateTimeOffset deadline, CancellationToken cancellationToken)
    {
        try
        {
            var response = await peers.ClientFor(leader).ReadIndexAsync(new ReadIndexRequest(), deadline: deadline.UtcDateTime, cancellationToken: cancellationToken);
            return response.Index;
        }
        catch (RpcException e)
        {
            throw Classify(e, $"{e.StatusCode}: {e.Status.Detail}");
        }
    }

    private static Exception Classify(RpcException e, string answer) => e.StatusCode switch
    {
        StatusCode.FailedPrecondition => new NotLeaderException(answer, e),
        StatusCode.Unavailable => new LeaderUnreachableException(answer, e),
        _ => new OutcomeUnknownException(answer, e),
    };
}
