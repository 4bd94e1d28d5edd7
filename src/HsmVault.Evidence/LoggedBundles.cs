namespace HsmVault.Evidence;

/// <summary>
/// What deployment verification and the auditor read out of a logged validation bundle. The one
/// place that knows the bundle's encoding, so that the bundle codec plugs in here alone.
/// </summary>
public static class LoggedBundles
{
    /// <summary>The evidence digest a logged bundle carries.</summary>
    /// <exception cref="EvidenceLogException">The bundle cannot be read.</exception>
    public static byte[] EvidenceDigestOf(byte[] bundle)
    {
        ArgumentNullException.ThrowIfNull(bundle);
        throw new EvidenceLogException(
            "this build cannot decode validation bundles yet, so it cannot read the evidence digest of the logged bundle " +
            $"({bundle.Length} bytes); the witness check needs the bundle codec");
    }
}
