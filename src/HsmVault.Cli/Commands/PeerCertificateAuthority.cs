using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace HsmVault.Cli.Commands;

/// <summary>
/// Issues the certificates members use for mutual TLS with each other: a fleet peer CA, and
/// one certificate per member with common name = member id and organization = fleet id. The
/// CA's private key lives only in memory while it issues, then is gone: membership is fixed,
/// so nobody (the operator included) can later mint a certificate for an extra member.
/// </summary>
public static class PeerCertificateAuthority
{
    /// <summary>Writes <c>peer-ca.pem</c> and, for each member, <c>&lt;id&gt;.peer.pem</c> and <c>&lt;id&gt;.peer.key.pem</c> (0600) into <paramref name="directory"/>.</summary>
    public static void Issue(string directory, string fleetId, IReadOnlyList<string> memberIds, TimeSpan validity)
    {
        ArgumentNullException.ThrowIfNull(memberIds);
        Directory.CreateDirectory(directory);
        var notBefore = DateTimeOffset.UtcNow.AddMinutes(-5);
        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var caRequest = new CertificateRequest(new X500DistinguishedName($"CN=HsmVault peer CA, O={fleetId}"), caKey, HashAlgorithmName.SHA256);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: true, hasPathLengthConstraint: true, pathLengthConstraint: 0, critical: true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, critical: true));
        caRequest.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(caRequest.PublicKey, critical: false));
        using var ca = caRequest.CreateSelfSigned(notBefore, notBefore + validity);
        File.WriteAllText(Path.Combine(directory, "peer-ca.pem"), ca.ExportCertificatePem());

        foreach (var memberId in memberIds)
        {
            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var request = new CertificateRequest(new X500DistinguishedName($"CN={memberId}, O={fleetId}"), key, HashAlgorithmName.SHA256);
            request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: false, hasPathLengthConstraint: false, pathLengthConstraint: 0, critical: true));
            request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, critical: true));
            request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
                [new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], critical: false));
            var names = new SubjectAlternativeNameBuilder();
            names.AddDnsName(memberId);
            names.AddDnsName("localhost");
            names.AddIpAddress(System.Net.IPAddress.Loopback);
            request.CertificateExtensions.Add(names.Build());
            using var certificate = request.Create(ca, notBefore, notBefore + validity, RandomNumberGenerator.GetBytes(16));
            File.WriteAllText(Path.Combine(directory, $"{memberId}.peer.pem"), certificate.ExportCertificatePem());
            using var keyFile = PrivateFiles.Create(Path.Combine(directory, $"{memberId}.peer.key.pem"), FileMode.Create);
            using var writer = new StreamWriter(keyFile);
            writer.Write(key.ExportPkcs8PrivateKeyPem());
        }
    }
}
