namespace HsmVault.Evidence;

/// <summary>One numbered check of a verification: what it establishes, why that matters, and its outcome.</summary>
/// <param name="Number">Its number in the report, from 1.</param>
/// <param name="What">What is checked.</param>
/// <param name="Why">Why a person should care.</param>
/// <param name="Passed">The outcome.</param>
/// <param name="Details">What was found: on failure, each thing that failed, named.</param>
public sealed record VerificationCheck(int Number, string What, string Why, bool Passed, IReadOnlyList<string> Details);

/// <summary>The outcome of <see cref="DeploymentVerifier"/>: every check in order, printable step by step.</summary>
/// <param name="Source">What was verified (a file name).</param>
/// <param name="Digest">SHA-256 of the file's bytes.</param>
/// <param name="Evidence">The document, when it could be read.</param>
/// <param name="Checks">Every check made.</param>
public sealed record VerificationReport(string Source, byte[] Digest, DeploymentEvidence? Evidence, IReadOnlyList<VerificationCheck> Checks)
{
    /// <summary>Whether every check passed.</summary>
    public bool Passed => Checks.Count > 0 && Checks.All(c => c.Passed);

    /// <summary>The checks that failed.</summary>
    public IEnumerable<VerificationCheck> Failures => Checks.Where(c => !c.Passed);

    /// <summary>Writes the report a person follows: a header, each check numbered with its reason and outcome, the verdict.</summary>
    public void Write(TextWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.WriteLine($"Deployment evidence: {Source}");
        writer.WriteLine($"  evidence digest (sha256sum of the file): {Convert.ToHexStringLower(Digest)}");
        if (Evidence is { } evidence)
        {
            writer.WriteLine($"  fleet '{evidence.Body.Fleet}', epoch {evidence.Body.Epoch}, {evidence.Body.Members.Count} members, " +
                $"{evidence.Body.Transcript.Count} ceremony steps, recorded {evidence.Body.CreatedAt}");
        }

        foreach (var check in Checks)
        {
            writer.WriteLine();
            writer.WriteLine($"{check.Number}. {check.What}");
            writer.WriteLine($"   Why: {check.Why}");
            writer.WriteLine($"   {(check.Passed ? "PASS" : "FAIL")}");
            foreach (var detail in check.Details)
            {
                writer.WriteLine($"     - {detail}");
            }
        }

        writer.WriteLine();
        var failed = Failures.Count();
        writer.WriteLine(failed == 0
            ? $"RESULT: PASS — all {Checks.Count} checks passed"
            : $"RESULT: FAIL — {failed} of {Checks.Count} checks failed: {string.Join(", ", Failures.Select(f => f.Number))}");
    }
}
