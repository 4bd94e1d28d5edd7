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
/// short back-off; the core retransmits what matters.
/// </summary>
public sealed partial class GrpcRaftTransport : IRaftTransport, IAsyncDisposable
{
    private const int QueueCapacity = 4096;
    private readonly Dictionary<string, Channel<RaftMessage>> _queues = new(StringComparer.Ordinal);
    private readonly List<Task> _senders = [];
    private readonly CancellationTokenSource _stopping = new();
    private readonly ILogger _logger;
    private readonly PeerLinkGate _gate;
    private int _disposed;

    /// <summary>Starts a sender per peer.</summary>
    public GrpcRaftTransport(PeerConnections connections, PeerLinkGate gate, ILogger<GrpcRaftTransport> logger)
    {
        ArgumentNullException.ThrowIfNull(connections);
        _logger = logger;
        _gate = gate;
        foreach (var peer in connections.PeerIds)
        {
            var queue = Channel.CreateBounded<RaftMessage>(new BoundedChannelOptions(QueueCapacity)
            {
                FullMode = BoundedChannelFullMode.DropWrite,
                SingleReader = true,
            });
            _queues[peer] = queue;
            _senders.Add(Task.Run(() => SendLoopAsync(peer, connections.ClientFor(peer), queue.Reader, _stopping.Token)));
        }
    }

    /// <inheritdoc/>
    public void Send(RaftMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (_gate.IsOpen(message.To) && _queues.TryGetValue(message.To, out var queue))
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

        await Task.WhenAll(_senders).ContinueWith(_ => { }, TaskScheduler.Default);
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

    private static partial class Log
    {
        [LoggerMessage(EventId = 6000, EventName = "PeerUnreachable", Level = LogLevel.Warning, Message = "Peer {Peer} is unreachable: {Reason}")]
        public static partial void PeerUnreachable(ILogger logger, string peer, string reason);

        [LoggerMessage(EventId = 6001, EventName = "PeerReachable", Level = LogLevel.Information, Message = "Peer {Peer} is reachable again")]
        public static partial void PeerReachable(ILogger logger, string peer);
    }
}
