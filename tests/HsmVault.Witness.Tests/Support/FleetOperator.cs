using System.Security.Cryptography;
using HsmVault.Crypto.Signatures;
using HsmVault.Transparency;

namespace HsmVault.Witness.Tests.Support;

/// <summary>A namespace's operator with a software ECDSA P-256 key, signing submissions as the witness expects.</summary>
public sealed class FleetOperator : IDisposable
{
    private readonly ECDsa _key = ECDsa.Create(ECCurve.NamedCurves.nistP256);

    /// <summary>An operator of <paramref name="ns"/>.</summary>
    public FleetOperator(string ns) => Namespace = ns;

    /// <summary>The namespace it submits to.</summary>
    public string Namespace { get; }

    /// <summary>The public key, as the witness is configured with it.</summary>
    public SigningKeyDescription PublicKey
    {
        get
        {
            var q = _key.ExportParameters(includePrivateParameters: false).Q;
            return new SigningKeyDescription(SignatureAlgorithm.EcdsaP256Sha256, [0x04, .. q.X!, .. q.Y!]);
        }
    }

    /// <summary>The public key in base64, for configuration.</summary>
    public string PublicKeyBase64 => Convert.ToBase64String(PublicKey.PublicKey);

    /// <summary>The namespace's configuration entry.</summary>
    public WitnessNamespaceOptions Options
    {
        get
        {
            var options = new WitnessNamespaceOptions { Name = Namespace };
            options.OperatorKeys.Add(new OperatorKeyOptions { Algorithm = SignatureAlgorithm.EcdsaP256Sha256, PublicKey = PublicKeyBase64 });
            return options;
        }
    }

    /// <summary>The operator's signature of the submission of <paramref name="bundle"/> as <paramref name="epoch"/>.</summary>
    public byte[] Sign(ulong epoch, byte[] bundle, string? ns = null) =>
        _key.SignData(WitnessSubmission.SignedMessage(ns ?? Namespace, epoch, SHA256.HashData(bundle)), HashAlgorithmName.SHA256,
            DSASignatureFormat.IeeeP1363FixedFieldConcatenation);

    /// <summary>The operator's signature of any message, as the bundle publisher asks for it.</summary>
    public HsmVault.Transparency.Bundles.BundleSignature SignMessage(byte[] message) =>
        new(SignatureAlgorithm.EcdsaP256Sha256, _key.SignData(message, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation));

    /// <summary>Writes the private key as the PKCS#8 PEM file <c>hsmvault fleet bundle --operator-key</c> reads; returns its path.</summary>
    public string WritePrivateKeyPem(string path)
    {
        File.WriteAllText(path, _key.ExportPkcs8PrivateKeyPem());
        return path;
    }

    /// <summary>A signed submission.</summary>
    public BundleSubmission Submission(ulong epoch, byte[] bundle) =>
        new(Namespace, epoch, bundle, SignatureAlgorithm.EcdsaP256Sha256, Sign(epoch, bundle));

    /// <summary>A bundle whose content names the namespace, epoch and variant.</summary>
    public byte[] Bundle(ulong epoch, int variant = 0) => System.Text.Encoding.UTF8.GetBytes($"bundle {Namespace} epoch {epoch} variant {variant}");

    public void Dispose() => _key.Dispose();
}
