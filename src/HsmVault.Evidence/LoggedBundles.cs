using HsmVault.Transparency;
using HsmVault.Transparency.Bundles;

namespace HsmVault.Evidence;

/// <summary>
/// What deployment verification and the auditor read out of a logged validation bundle, through
/// the one bundle codec (<see cref="BundleCodec"/>).
/// </summary>
public static class LoggedBundles
{
    /// <summary>The evidence digest a logged bundle carries.</summary>
    /// <exception cref="EvidenceLogException">The bundle does not decode.</exception>
    public static byte[] EvidenceDigestOf(byte[] bundle)
    {
        ArgumentNullException.ThrowIfNull(bundle);
        try
        {
            return BundleCodec.Decode(bundle).EvidenceDigest;
        }
        catch (TransparencyException e)
        {
            throw new EvidenceLogException($"the logged bundle ({bundle.Length} bytes) is not a validation bundle, so it names no evidence: {e.Message}", e);
        }
    }
}
