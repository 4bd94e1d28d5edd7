using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Grpc.Core.Interceptors;
using Grpc.Net.Client;
using HsmVault.Protocol.V1;

namespace HsmVault.Server.Peering;

/// <summary>
/// One gRPC channel to each other member, over mutual TLS: this member presents its peer
/// certificate and accepts the other side only if its certificate proves the member id the
/// configuration lists at that address.
/// </summary>
public sealed class PeerConnections : IDisposable
{
    /// <summary>Data bytes per snapshot chunk: a snapshot of any size travels as a stream of these (see peer.proto).</summary>
    public const int SnapshotChunkBytes = 4 * 1024 * 1024;

    /// <summary>
    /// Largest peer message: a snapshot chunk with its envelope, or a batch of log entries (at most
    /// <c>RaftHostOptions.MaxEntriesPerMessage</c> commands, each under the client API's 16 KiB cap).
    /// </summary>
    public const int MaxMessageBytes = SnapshotChunkBytes + (4 * 1024 * 1024);

    /// <summary>Metadata header naming the sender's fleet, checked by the receiver besides the certificate.</summary>
    public const string FleetHeader = "hsmvault-fleet";

    private readonly Dictionary<string, GrpcChannel> _channels = new(StringComparer.Ordinal);
    private readonly string _fleetId;
    private readonly IPeerCallInterceptor[] _interceptors;

    /// <summary>Opens (lazily connecting) channels to every member but <paramref name="self"/>.</summary>
    /// <param name="options">The members and their addresses.</param>
    /// <param name="fleetId">This fleet, named on every call.</param>
    /// <param name="self">This member.</param>
    /// <param name="certificates">This member's peer certificate and the fleet's peer CA; null in a fleet of one.</param>
    /// <param name="interceptors">Wrap every call to a peer (tests' network faults); none in production.</param>
    public PeerConnections(PeerOptions options, string fleetId, string self, PeerCertificates? certificates, IEnumerable<IPeerCallInterceptor>? interceptors = null)
    {
        _fleetId = fleetId;
        _interceptors = [.. interceptors ?? []];
        ArgumentNullException.ThrowIfNull(options);
        foreach (var member in options.Members.Where(m => m.Id != self))
        {
            var expected = member.Id;
            var handler = new SocketsHttpHandler
            {
                EnableMultipleHttp2Connections = true,
                KeepAlivePingDelay = TimeSpan.FromSeconds(10),
                KeepAlivePingTimeout = TimeSpan.FromSeconds(5),
                ConnectTimeout = TimeSpan.FromSeconds(2),
                SslOptions = new SslClientAuthenticationOptions
                {
                    ClientCertificates = certificates is null ? null : new X509CertificateCollection { certificates.Certificate },
                    // Identity is the member id in a certificate from the fleet's peer CA; the
                    // host name in the address is not what is trusted.
                    RemoteCertificateValidationCallback = (_, certificate, _, _) =>
                        certificates is not null && certificate is X509Certificate2 peer && certificates.Identify(peer) == expected,
                },
            };
            _channels[member.Id] = GrpcChannel.ForAddress(member.PeerAddress, new GrpcChannelOptions
            {
                HttpHandler = handler,
                DisposeHttpClient = true,
                MaxReceiveMessageSize = MaxMessageBytes,
                MaxSendMessageSize = MaxMessageBytes,
            });
        }
    }

    /// <summary>The other members' ids.</summary>
    public IEnumerable<string> PeerIds => _channels.Keys;

    /// <summary>A client for the peer API of <paramref name="memberId"/>; every call names this fleet.</summary>
    public Peer.PeerClient ClientFor(string memberId)
    {
        if (!_channels.TryGetValue(memberId, out var channel))
        {
            throw new ArgumentException($"'{memberId}' is not another member of this fleet", nameof(memberId));
        }

        var invoker = channel.Intercept(metadata =>
        {
            metadata.Add(FleetHeader, _fleetId);
            return metadata;
        });
        foreach (var interceptor in _interceptors)
        {
            invoker = invoker.Intercept(interceptor.ForMember(memberId));
        }

        return new Peer.PeerClient(invoker);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var channel in _channels.Values)
        {
            channel.Dispose();
        }
    }
}
