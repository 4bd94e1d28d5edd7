using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Options;

namespace HsmVault.Server.Peering;

/// <summary>
/// The credentials of mutual TLS between members: this member's certificate and key, and the
/// fleet's peer CA as the only trust anchor. A peer is identified by its certificate's common
/// name (its member id) and organization (the fleet id), never by host name or address, so a
/// member moved to another address keeps its identity and nothing else can claim it.
/// </summary>
public sealed class PeerCertificates : IDisposable
{
    // Far more than any fleet's members; see Identify.
    private const int MaxCachedProofs = 64;

    private readonly X509Certificate2 _authority;
    private readonly ConcurrentDictionary<string, Proof> _proofs = new(StringComparer.Ordinal);

    private PeerCertificates(X509Certificate2 certificate, X509Certificate2 authority, string fleetId)
    {
        Certificate = certificate;
        _authority = authority;
        FleetId = fleetId;
    }

    /// <summary>This member's certificate, with its private key.</summary>
    public X509Certificate2 Certificate { get; }

    /// <summary>The fleet every peer certificate must name as its organization.</summary>
    public string FleetId { get; }

    /// <summary>Loads the PEM files named in <see cref="PeerOptions"/>.</summary>
    /// <exception cref="OptionsValidationException">A file cannot be read or parsed, or the certificate is not this member's.</exception>
    public static PeerCertificates Load(PeerOptions options, string fleetId, string memberId)
    {
        ArgumentNullException.ThrowIfNull(options);
        X509Certificate2 certificate;
        X509Certificate2 authority;
        try
        {
            using var pem = X509Certificate2.CreateFromPemFile(options.CertificateFile!, options.KeyFile!);
            // Re-import as PKCS#12 so the key is usable by SslStream on every platform.
            certificate = X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), password: null);
            authority = X509CertificateLoader.LoadCertificateFromFile(options.CaFile!);
        }
        catch (Exception e) when (e is CryptographicException or IOException or UnauthorizedAccessException)
        {
            throw Invalid($"cannot load the peer certificate ('{options.CertificateFile}', key '{options.KeyFile}', CA '{options.CaFile}'): {e.Message}");
        }

        var result = new PeerCertificates(certificate, authority, fleetId);
        var self = result.Identify(certificate);
        if (self != memberId)
        {
            result.Dispose();
            throw Invalid($"peer certificate '{options.CertificateFile}' is not valid for member '{memberId}' of fleet '{fleetId}': " +
                (self is null ? "it is not issued by the fleet's peer CA for this fleet" : $"it names member '{self}'"));
        }

        return result;
    }

    private static OptionsValidationException Invalid(string message) =>
        new(PeerOptions.SectionName, typeof(PeerOptions), [message]);

    /// <summary>
    /// The member id a peer certificate proves: chained to the fleet's peer CA alone, within its
    /// validity, organization = this fleet. Null when it proves nothing.
    /// </summary>
    /// <remarks>
    /// Every peer RPC asks this (the TLS handshake and then the service for each call), and building a chain
    /// costs about 0.2 ms. The answer depends only on the certificate's bytes, the one fixed trust anchor and
    /// the clock (revocation is not checked: the CA's key is discarded after issuing), so a proof is cached by
    /// the certificate's SHA-256 thumbprint and reused until the earlier of its and the CA's expiry. Only
    /// successful proofs are cached, and a handful of members means a handful of entries; the cache is bounded
    /// anyway so that presenting many certificates (each of which must still pass the TLS handshake) cannot
    /// grow it.
    /// </remarks>
    public string? Identify(X509Certificate2? certificate)
    {
        if (certificate is null)
        {
            return null;
        }

        var thumbprint = certificate.GetCertHashString(HashAlgorithmName.SHA256);
        var now = DateTime.UtcNow;
        if (_proofs.TryGetValue(thumbprint, out var proof) && now >= proof.NotBefore && now < proof.NotAfter)
        {
            return proof.MemberId;
        }

        var memberId = Prove(certificate);
        if (memberId is not null && _proofs.Count < MaxCachedProofs)
        {
            var notBefore = Later(certificate.NotBefore.ToUniversalTime(), _authority.NotBefore.ToUniversalTime());
            var notAfter = Earlier(certificate.NotAfter.ToUniversalTime(), _authority.NotAfter.ToUniversalTime());
            _proofs[thumbprint] = new Proof(memberId, notBefore, notAfter);
        }

        return memberId;
    }

    private string? Prove(X509Certificate2 certificate)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(_authority);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        if (!chain.Build(certificate))
        {
            return null;
        }

        var organization = certificate.SubjectName.EnumerateRelativeDistinguishedNames()
            .FirstOrDefault(n => n.GetSingleElementType().Value == "2.5.4.10")?.GetSingleElementValue();
        if (organization != FleetId)
        {
            return null;
        }

        var memberId = certificate.GetNameInfo(X509NameType.SimpleName, forIssuer: false);
        return string.IsNullOrEmpty(memberId) ? null : memberId;
    }

    private static DateTime Later(DateTime a, DateTime b) => a > b ? a : b;

    private static DateTime Earlier(DateTime a, DateTime b) => a < b ? a : b;

    /// <inheritdoc/>
    public void Dispose()
    {
        Certificate.Dispose();
        _authority.Dispose();
    }

    private sealed record Proof(string MemberId, DateTime NotBefore, DateTime NotAfter);
}
