using Grpc.Core;
using Google.Protobuf;
using HsmVault.Consensus;
using HsmVault.Protocol.V1;
using HsmVault.Vault;
using HsmVault.Vault.Signing;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace HsmVault.Server.Peering;

/// <summary>
/// The peer API of <c>peer.proto</c>, served on the peer endpoint only. Every call must come
/// over mutual TLS with a certificate that proves a configured member of this fleet, other
/// than this one; Raft messages must name that member as sender, so one member cannot speak
/// for another. Snapshot chunks are assembled per stream, into a file beside the Raft storage
/// (<see cref="SnapshotAssembler"/>), and only a complete, matching snapshot reaches Raft.
/// </summary>
internal sealed partial class PeerGrpcService(
    RaftHost host,
    LeaderRouter router,
    FileRaftStorage storage,
    CommandVerifier verifier,
    PeerCertificates? certificates,
    IOptions<PeerOptions> peerOptions,
    IOptions<VaultOptions> vaultOptions,
    IHostApplicationLifetime lifetime,
    ILogger<PeerGrpcService> logger) : Peer.PeerBase
{
    private readonly HashSet<string> _members = peerOptions.Value.MemberIds(vaultOptions.Value.MemberId).ToHashSet(StringComparer.Ordinal);
    private readonly string _self = vaultOptions.Value.MemberId;

    /// <inheritdoc/>
    public override async Task<ReplicateAck> Replicate(IAsyncStreamReader<RaftEnvelope> requestStream, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(requestStream);
        var peer = Authenticate(context);

        // A peer's stream only ends when the peer goes away. End it when this member shuts down,
        // or Kestrel waits for it until the host's shutdown timeout and the Raft host is then
        // stopped with an already-cancelled token.
        using var stopping = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, lifetime.ApplicationStopping);
        try
        {
            await ReceiveAsync(peer, requestStream, stopping.Token);
        }
        catch (OperationCanceledException) when (lifetime.ApplicationStopping.IsCancellationRequested)
        {
            // Shutting down: the peer reconnects to whoever serves this address next.
        }
        catch (IOException)
        {
            // The peer went away mid-stream (stopped, killed, or reconnecting): Raft tolerates
            // the lost messages, and the peer opens a new stream when it is back.
        }

        return new ReplicateAck();
    }

    private async Task ReceiveAsync(string peer, IAsyncStreamReader<RaftEnvelope> requestStream, CancellationToken cancellationToken)
    {
        // A snapshot's data stays in its file all the way to the state machine: the disk is the bound.
        using var snapshots = new SnapshotAssembler(storage.DirectoryPath, long.MaxValue);
        await foreach (var envelope in requestStream.ReadAllAsync(cancellationToken))
        {
            var chunk = envelope.BodyCase == RaftEnvelope.BodyOneofCase.InstallSnapshot;
            RaftMessage? message = null;
            try
            {
                if (!chunk)
                {
                    message = RaftMessageMapper.FromEnvelope(envelope);
                }
            }
            catch (InvalidDataException e)
            {
                throw Refuse(PeerRefusal.Malformed, $"malformed Raft message from {peer}: {e.Message}");
            }

            // Every chunk is checked, not only the last: a member may not even fill another's disk in its name.
            if (envelope.From != peer || envelope.To != _self)
            {
                Log.Impersonation(logger, peer, envelope.From, envelope.To);
                throw Refuse(PeerRefusal.NotAllowed, $"member '{peer}' may only send its own messages to '{_self}'");
            }

            if (chunk)
            {
                message = Assemble(peer, envelope, snapshots);
            }

            if (message is not null)
            {
                host.Deliver(message);
            }
        }
    }

    /// <summary>Adds a chunk to the stream's transfer; the whole InstallSnapshot message once it is complete.</summary>
    private InstallSnapshotRequest? Assemble(string peer, RaftEnvelope envelope, SnapshotAssembler snapshots)
    {
        RaftSnapshot? snapshot;
        try
        {
            snapshot = snapshots.Add(RaftMessageMapper.ToChunk(envelope));
        }
        catch (InvalidDataException e)
        {
            Log.SnapshotChunkRefused(logger, peer, e.Message);
            throw Refuse(PeerRefusal.Malformed, $"snapshot chunk from {peer} refused: {e.Message}");
        }

        if (snapshot is null)
        {
            return null;
        }

        Log.SnapshotReceived(logger, peer, snapshot.Index, snapshot.Data.Length);
        return new InstallSnapshotRequest(envelope.From, envelope.To, envelope.Term, snapshot, envelope.InstallSnapshot.ReadSequence);
    }

    /// <inheritdoc/>
    public override async Task<ForwardResponse> Forward(ForwardRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(context);
        Authenticate(context);
        // Checked here so that garbage and forgeries never reach the log; every member checks
        // again when it applies the entry, whoever proposed it.
        if (verifier.Verify(request.Command.Span, out var refusal) is null)
        {
            throw Refuse(PeerRefusal.NotAllowed, $"forwarded command refused: {refusal!.Reason}");
        }

        try
        {
            var result = await router.AcceptForwardedAsync(request.Command.ToByteArray(), context.CancellationToken);
            return new ForwardResponse { Result = ByteString.CopyFrom(result) };
        }
        catch (Exception e) when (e is NotLeaderException or LeaderUnreachableException)
        {
            throw RefuseForTheLeader(e);
        }
    }

    /// <inheritdoc/>
    public override async Task<ReadIndexResponse> ReadIndex(ReadIndexRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        Authenticate(context);
        try
        {
            // The follower serves the read once it has applied as far as this index.
            return new ReadIndexResponse { Index = await router.AcceptReadIndexAsync(context.CancellationToken) };
        }
        catch (Exception e) when (e is NotLeaderException or LeaderUnreachableException)
        {
            throw RefuseForTheLeader(e);
        }
    }

    /// <summary>The leader's refusals (<see cref="LeaderRouter"/>) as the statuses <see cref="GrpcLeaderLink"/> reads back.</summary>
    private static RpcException RefuseForTheLeader(Exception refusal) =>
        Refuse(refusal is NotLeaderException ? PeerRefusal.NotLeader : PeerRefusal.Unavailable, refusal.Message);

    /// <summary>Why a peer call was refused; <see cref="Refuse"/> maps each to its one status.</summary>
    private enum PeerRefusal
    {
        /// <summary>The message does not decode.</summary>
        Malformed,

        /// <summary>The caller is not a member of this fleet, speaks for another, or sent a command no member signed.</summary>
        NotAllowed,

        /// <summary>This member does not lead, so it did nothing: the caller may ask the leader.</summary>
        NotLeader,

        /// <summary>There is no majority, or leadership moved mid-write (which may or may not have committed).</summary>
        Unavailable,
    }

    /// <summary>
    /// The one mapping of peer refusals to statuses. <see cref="GrpcLeaderLink"/> relies on it:
    /// FAILED_PRECONDITION means nothing was proposed (safe to ask again), anything else may have.
    /// </summary>
    private static RpcException Refuse(PeerRefusal refusal, string message) => new(new Status(
        refusal switch
        {
            PeerRefusal.Malformed => StatusCode.InvalidArgument,
            PeerRefusal.NotAllowed => StatusCode.PermissionDenied,
            PeerRefusal.NotLeader => StatusCode.FailedPrecondition,
            PeerRefusal.Unavailable => StatusCode.Unavailable,
            _ => StatusCode.Internal,
        },
        message));

    /// <summary>The member id the caller's TLS certificate proves; refuses anyone else.</summary>
    private string Authenticate(ServerCallContext context)
    {
        var http = context.GetHttpContext();
        var peer = certificates?.Identify(http.Connection.ClientCertificate);
        var fleet = context.RequestHeaders.GetValue(PeerConnections.FleetHeader);
        if (peer is null || !_members.Contains(peer) || peer == _self)
        {
            Log.Refused(logger, http.Connection.RemoteIpAddress?.ToString() ?? "?", peer ?? "no valid peer certificate");
            throw Refuse(PeerRefusal.NotAllowed, "the peer API is for members of this fleet only");
        }

        if (fleet != vaultOptions.Value.FleetId)
        {
            Log.WrongFleet(logger, peer, fleet ?? "none", vaultOptions.Value.FleetId);
            throw Refuse(PeerRefusal.NotAllowed, $"member '{peer}' belongs to fleet '{fleet}', not '{vaultOptions.Value.FleetId}'");
        }

        return peer;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 6100, EventName = "PeerCallRefused", Level = LogLevel.Warning, Message = "Refused a peer call from {Remote}: {Reason}")]
        public static partial void Refused(ILogger logger, string remote, string reason);

        [LoggerMessage(EventId = 6101, EventName = "PeerWrongFleet", Level = LogLevel.Error,
            Message = "Member {Peer} announces fleet '{Fleet}' but this member is in fleet '{Expected}'; check the configuration")]
        public static partial void WrongFleet(ILogger logger, string peer, string fleet, string expected);

        [LoggerMessage(EventId = 6102, EventName = "PeerImpersonation", Level = LogLevel.Warning, Message = "Member {Peer} sent a message as {From} to {To}; refused")]
        public static partial void Impersonation(ILogger logger, string peer, string from, string to);

        [LoggerMessage(EventId = 6103, EventName = "SnapshotReceived", Level = LogLevel.Information, Message = "Received snapshot at index {Index} ({Bytes} bytes) from {Peer}, complete and matching its digest")]
        public static partial void SnapshotReceived(ILogger logger, string peer, ulong index, long bytes);

        [LoggerMessage(EventId = 6104, EventName = "SnapshotChunkRefused", Level = LogLevel.Warning, Message = "Refused a snapshot chunk from {Peer}: {Reason}")]
        public static partial void SnapshotChunkRefused(ILogger logger, string peer, string reason);
    }
}
