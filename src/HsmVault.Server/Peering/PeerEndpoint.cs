using System.Net;
using System.Security.Authentication;
using HsmVault.Vault;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;

namespace HsmVault.Server.Peering;

/// <summary>
/// This member's peer endpoint: its own <c>PeerAddress</c>, HTTPS with a client certificate
/// required from the fleet's peer CA. Present only in a fleet of more than one member.
/// </summary>
public sealed class PeerEndpoint
{
    private PeerEndpoint(IPAddress? address, int port, PeerCertificates certificates)
    {
        Address = address;
        Port = port;
        Certificates = certificates;
    }

    /// <summary>Address to listen on; null for every interface (a host name was configured).</summary>
    public IPAddress? Address { get; }

    /// <summary>Port to listen on.</summary>
    public int Port { get; }

    /// <summary>The member's TLS credentials and the fleet's trust anchor.</summary>
    public PeerCertificates Certificates { get; }

    /// <summary>
    /// The endpoint the bound options describe. Returns null for a fleet of one, or when the
    /// settings are incomplete: options validation then refuses to start with a message naming
    /// what is missing.
    /// </summary>
    public static PeerEndpoint? From(PeerOptions peer, VaultOptions vault)
    {
        ArgumentNullException.ThrowIfNull(peer);
        ArgumentNullException.ThrowIfNull(vault);
        var self = peer.Members.FirstOrDefault(m => m.Id == vault.MemberId);
        if (peer.Members.Count < 2 || self is null
            || !Uri.TryCreate(self.PeerAddress, UriKind.Absolute, out var uri)
            || new[] { peer.CertificateFile, peer.KeyFile, peer.CaFile }.Any(f => string.IsNullOrEmpty(f) || !File.Exists(f)))
        {
            return null;
        }

        var certificates = PeerCertificates.Load(peer, vault.FleetId, vault.MemberId);
        return new PeerEndpoint(IPAddress.TryParse(uri.Host, out var ip) ? ip : null, uri.Port, certificates);
    }

    /// <summary>Adds the endpoint to Kestrel.</summary>
    public void Listen(KestrelServerOptions kestrel)
    {
        ArgumentNullException.ThrowIfNull(kestrel);
        void Configure(ListenOptions listen)
        {
            listen.Protocols = HttpProtocols.Http2;
            listen.UseHttps(https =>
            {
                https.ServerCertificate = Certificates.Certificate;
                https.SslProtocols = SslProtocols.Tls13;
                https.ClientCertificateMode = ClientCertificateMode.RequireCertificate;
                https.ClientCertificateValidation = (certificate, _, _) => Certificates.Identify(certificate) is not null;
            });
        }

        if (Address is null)
        {
            kestrel.ListenAnyIP(Port, Configure);
        }
        else
        {
            kestrel.Listen(Address, Port, Configure);
        }
    }
}
