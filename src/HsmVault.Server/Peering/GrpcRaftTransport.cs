using System.Diagnostics;
using System.Threading.Channels;
using Grpc.Core;
using HsmVault.Consensus;
using HsmVault.Protocol.V1;
using Microsoft.Extensions.Logging;

namespace HsmVault.Server.Peering;

/// <summary>
/// Sends Raft messages to the other members: one queue and one long-lived client stream per
/// peer, so messages to a peer leave in order and a slow or dead peer never holds up the
/// others. Raft tolerates loss, so a full queue drops and a broken stream is reopened after a
/// short back-off; the core retransmits what matters. A snapshot goes on a stream of its own
/// to that peer, in chunks (<see cref="SnapshotSender"/>), so that a state of any size never
/// has to fit one message and appends and heartbeats to the peer are not held up behind it.
/// </summary>
public sealed partial class GrpcRaftTransport : IRaftTransport, IAsyncDisposable
{
    private const int QueueCapacity = 4096;
    private readonly Dictionary<string, Channel<RaftMessage>> _queues = new(StringComparer.Ordinal);
    private readonly Dictionary<string, SnapshotSender> _snapshots = new(StringComparer.Ordinal);
    private readonly List<Task> _senders = [];
    private readonly CancellationTokenSource _stopping = new();
    private readonly ILogger _logger;
    private int _disposed;

    /// <summary>Starts a sender per peer.</summary>
    public GrpcRaftTransport(PeerConnections connections, ILogger<GrpcRaftTransport> logger)
    {
        ArgumentNullException.ThrowIfNull(connections);
        _logger = logger;
        foreach (var peer in connections.PeerIds)
        {
            var queue = Channel.CreateBounded<RaftMessage>(new BoundedChannelOptions(QueueCapacity)
            {
                FullMode = BoundedChannelFullMode.DropWrite,
                SingleReader = true,
            });
            _queues[peer] = queue;
            _senders.Add(Task.Run(() => SendLoopAsync(peer, connections.ClientFor(peer), queue.Reader, _stopping.Token)));
            _snapshots[peer] = new SnapshotSender(peer, connections.ClientFor(peer), this);
        }
    }

    /// <inheritdoc/>
    public void Send(RaftMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (message is InstallSnapshotRequest snapshot)
        {
            if (_snapshots.TryGetValue(message.To, out var sender))
            {
                sender.Offer(snapshot, _stopping.Token);
            }
        }
        else if (_queues.TryGetValue(message.To, out var queue))
        {
            queue.Writer.TryWrite(message);
        }
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        // RaftHostedService disposes this at stop, and the container does again at its own disposal.
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stopping.CancelAsync();
        foreach (var queue in _queues.Values)
        {
            queue.Writer.TryComplete();
        }

        await Task.WhenAll(_senders.Concat(_snapshots.Values.Select(s => s.Current))).ContinueWith(_ => { }, TaskScheduler.Default);
        _stopping.Dispose();
    }

    private async Task SendLoopAsync(string peer, Peer.PeerClient client, ChannelReader<RaftMessage> queue, CancellationToken stopping)
    {
        var backoff = TimeSpan.FromMilliseconds(50);
        var connected = true;
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                using var call = client.Replicate(cancellationToken: stopping);
                while (await queue.WaitToReadAsync(stopping))
                {
                    while (queue.TryRead(out var message))
                    {
                        await call.RequestStream.WriteAsync(RaftMessageMapper.ToEnvelope(message), stopping);
                        if (!connected)
                        {
                            connected = true;
                            backoff = TimeSpan.FromMilliseconds(50);
                            Log.PeerReachable(_logger, peer);
                        }
                    }
                }

                return;
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is RpcException or IOException or InvalidOperationException or HttpRequestException)
            {
                if (connected)
                {
                    connected = false;
                    Log.PeerUnreachable(_logger, peer, e.Message);
                }

                // Messages queued while the peer is away are stale by the time it returns; the
                // leader's next heartbeat or retry carries what is still needed.
                while (queue.TryRead(out _))
                {
                }

                await Task.Delay(backoff, stopping).ContinueWith(_ => { }, TaskScheduler.Default);
                backoff = TimeSpan.FromMilliseconds(Math.Min(1000, backoff.TotalMilliseconds * 2));
            }
        }
    }

    /// <summary>
    /// Streams snapshots to one peer, one transfer at a time. The Raft core asks again for a snapshot
    /// whenever the peer has not answered within an election timeout, which a large state outlasts
    /// both on the wire and while the peer restores it: a request for the snapshot already on its way,
    /// or delivered within <see cref="ResendAfter"/>, is dropped rather than sent again from the start.
    /// A newer snapshot supersedes one in flight.
    /// </summary>
    private sealed class SnapshotSender(string peer, Peer.PeerClient client, GrpcRaftTransport transport)
    {
        /// <summary>How long a delivered snapshot is given to be installed before a repeated request sends it again.</summary>
        private static readonly TimeSpan ResendAfter = TimeSpan.FromSeconds(30);

        private readonly Lock _lock = new();
        private SnapshotId? _sending;
        private SnapshotId? _delivered;
        private long _deliveredAt;
        private CancellationTokenSource? _cancel;

        /// <summary>The transfer under way, or the last one.</summary>
        public Task Current { get; private set; } = Task.CompletedTask;

        public void Offer(InstallSnapshotRequest request, CancellationToken stopping)
        {
            var id = new SnapshotId(request.Term, request.Snapshot.Index, request.Snapshot.Term);
            lock (_lock)
            {
                if (_sending == id
                    || (_delivered == id && Stopwatch.GetElapsedTime(_deliveredAt) < ResendAfter)
                    || stopping.IsCancellationRequested)
                {
                    return;
                }

                _cancel?.Cancel();
                var cancel = CancellationTokenSource.CreateLinkedTokenSource(stopping);
                _cancel = cancel;
                _sending = id;
                var previous = Current;
                Current = Task.Run(() => TransferAsync(previous, request, id, cancel), CancellationToken.None);
            }
        }

        private async Task TransferAsync(Task previous, InstallSnapshotRequest request, SnapshotId id, CancellationTokenSource source)
        {
            var cancel = source.Token;
            // The superseded transfer stops at its next chunk; two never share the link.
            await previous.ContinueWith(_ => { }, TaskScheduler.Default);
            var started = Stopwatch.GetTimestamp();
            try
            {
                using var call = client.Replicate(cancellationToken: cancel);
                foreach (var envelope in RaftMessageMapper.ToChunkEnvelopes(request, PeerConnections.SnapshotChunkBytes))
                {
                    await call.RequestStream.WriteAsync(envelope, cancel);
                }

                await call.RequestStream.CompleteAsync();

                // The receiver answers once it has read, checked and handed on the whole snapshot.
                await call.ResponseAsync;
                lock (_lock)
                {
                    _delivered = id;
                    _deliveredAt = Stopwatch.GetTimestamp();
                }

                var milliseconds = (long)Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                Log.SnapshotSent(transport._logger, peer, request.Snapshot.Index, request.Snapshot.Data.Length, milliseconds);
            }
            catch (OperationCanceledException) when (cancel.IsCancellationRequested)
            {
                // Superseded by a newer snapshot, or shutting down.
            }
            catch (Exception e) when (e is RpcException or IOException or InvalidOperationException or HttpRequestException)
            {
                // The core asks again after its timeout; the next request starts over from offset 0.
                Log.SnapshotFailed(transport._logger, peer, request.Snapshot.Index, e.Message);
            }
            finally
            {
                lock (_lock)
                {
                    if (_cancel == source)
                    {
                        _sending = null;
                        _cancel = null;
                    }

                    source.Dispose();
                }
            }
        }
    }

    private readonly record struct SnapshotId(ulong LeaderTerm, ulong Index, ulong Term);

    private static partial class Log
    {
        [LoggerMessage(EventId = 6002, EventName = "SnapshotSent", Level = LogLevel.Information, Message = "Sent snapshot at index {Index} ({Bytes} bytes) to {Peer} in {Milliseconds} ms")]
        public static partial void SnapshotSent(ILogger logger, string peer, ulong index, long bytes, long milliseconds);

        [LoggerMessage(EventId = 6003, EventName = "SnapshotSendFailed", Level = LogLevel.Warning, Message = "Sending snapshot at index {Index} to {Peer} failed: {Reason}")]
        public static partial void SnapshotFailed(ILogger logger, string peer, ulong index, string reason);

        [LoggerMessage(EventId = 6000, EventName = "PeerUnreachable", Level = LogLevel.Warning, Message = "Peer {Peer} is unreachable: {Reason}")]
        public static partial void PeerUnreachable(ILogger logger, string peer, string reason);

        [LoggerMessage(EventId = 6001, EventName = "PeerReachable", Level = LogLevel.Information, Message = "Peer {Peer} is reachable again")]
        public static partial void PeerReachable(ILogger logger, string peer);
    }
}
