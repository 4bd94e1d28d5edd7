using System.Collections.Concurrent;
using Grpc.Core;
using Grpc.Core.Interceptors;
using HsmVault.Protocol.V1;
using HsmVault.Server.Peering;

namespace HsmVault.Fleet.Tests.Support;

/// <summary>
/// The fleet's cut links (partitions), kept by the fixture across the members' restarts. Every in-process member's
/// calls to the others go through <see cref="CutLinks"/>, which drops what it would send over a cut link; a link is cut
/// both ways, so each side dropping its own traffic cuts it fully.
/// </summary>
public sealed class LinkCuts
{
    private readonly ConcurrentDictionary<(string, string), bool> _cut = new();

    /// <summary>Whether traffic between <paramref name="a"/> and <paramref name="b"/> is lost.</summary>
    public bool IsCut(string a, string b) => _cut.ContainsKey(Key(a, b));

    /// <summary>Loses all traffic between <paramref name="a"/> and <paramref name="b"/> from now on, both ways.</summary>
    public void Cut(string a, string b) => _cut[Key(a, b)] = true;

    /// <summary>Mends every link.</summary>
    public void HealAll() => _cut.Clear();

    private static (string, string) Key(string a, string b) => string.CompareOrdinal(a, b) < 0 ? (a, b) : (b, a);
}

/// <summary>
/// A member's calls to the others through the fleet's <see cref="LinkCuts"/>, registered by the fixture as the
/// daemon's <see cref="IPeerCallInterceptor"/>. Over a cut link a Raft stream stays open and loses every message (a
/// snapshot's stream fails at its next chunk); a Forward or
/// ReadIndex is refused before it is sent, with the status that tells the caller nothing was proposed, so it asks
/// again until its deadline as it would with no leader.
/// </summary>
public sealed class CutLinks(LinkCuts cuts, string self) : IPeerCallInterceptor
{
    /// <inheritdoc/>
    public Interceptor ForMember(string memberId) => new Link(cuts, self, memberId);

    private sealed class Link(LinkCuts cuts, string self, string peer) : Interceptor
    {
        private bool IsCut => cuts.IsCut(self, peer);

        public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(
            TRequest request, ClientInterceptorContext<TRequest, TResponse> context, AsyncUnaryCallContinuation<TRequest, TResponse> continuation)
        {
            if (!IsCut)
            {
                return continuation(request, context);
            }

            var status = new Status(StatusCode.FailedPrecondition, $"the link from '{self}' to '{peer}' is cut; nothing was sent");
            return new AsyncUnaryCall<TResponse>(
                Task.FromException<TResponse>(new RpcException(status)),
                Task.FromResult(new Metadata()),
                () => status,
                () => [],
                () => { });
        }

        public override AsyncClientStreamingCall<TRequest, TResponse> AsyncClientStreamingCall<TRequest, TResponse>(
            ClientInterceptorContext<TRequest, TResponse> context, AsyncClientStreamingCallContinuation<TRequest, TResponse> continuation)
        {
            var call = continuation(context);
            return new AsyncClientStreamingCall<TRequest, TResponse>(
                new LossyWriter<TRequest>(call.RequestStream, () => IsCut, $"the link from '{self}' to '{peer}' was cut while the stream was open"),
                call.ResponseAsync,
                call.ResponseHeadersAsync,
                call.GetStatus,
                call.GetTrailers,
                call.Dispose);
        }
    }

    /// <summary>
    /// Loses what is written while the link is cut. A snapshot chunk fails its stream instead, as the production gate's
    /// sender gave up mid-transfer: a receiver given a snapshot with a hole refuses it, and the leader offers it again.
    /// </summary>
    private sealed class LossyWriter<T>(IClientStreamWriter<T> inner, Func<bool> isCut, string lost) : IClientStreamWriter<T>
    {
        public WriteOptions? WriteOptions
        {
            get => inner.WriteOptions;
            set => inner.WriteOptions = value;
        }

        public Task WriteAsync(T message) => WriteAsync(message, CancellationToken.None);

        public Task WriteAsync(T message, CancellationToken cancellationToken)
        {
            if (!isCut())
            {
                return inner.WriteAsync(message, cancellationToken);
            }

            return message is RaftEnvelope { BodyCase: RaftEnvelope.BodyOneofCase.InstallSnapshot }
                ? Task.FromException(new RpcException(new Status(StatusCode.Unavailable, lost)))
                : Task.CompletedTask;
        }

        public Task CompleteAsync() => inner.CompleteAsync();
    }
}
