namespace HsmVault.Evidence;

/// <summary>Where verification looks up the evidence digest a witness logged for a fleet's epoch.</summary>
public interface IEvidenceLog
{
    /// <summary>The logged evidence digest for <paramref name="fleet"/>'s epoch <paramref name="epoch"/>, after verifying how it was logged.</summary>
    /// <exception cref="EvidenceLogException">Nothing is logged, or what is logged does not verify; the message says which.</exception>
    Task<LoggedEvidence> FindAsync(string fleet, ulong epoch, CancellationToken cancellationToken);
}

/// <summary>An evidence digest as a witness logged it.</summary>
/// <param name="EvidenceDigest">The digest in the logged bundle.</param>
/// <param name="Description">Where it was found, e.g. "entry 4 of witness.example/log (tree size 9)".</param>
public sealed record LoggedEvidence(byte[] EvidenceDigest, string Description);

/// <summary>The witness had no entry, or one that did not verify.</summary>
public sealed class EvidenceLogException(string message, Exception? innerException = null) : Exception(message, innerException);
