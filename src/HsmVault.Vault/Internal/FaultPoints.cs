namespace HsmVault.Vault.Internal;

/// <summary>
/// Named places where a crash test can make the daemon die on purpose, the way
/// FoundationDB's buggify does: set <c>HSMVAULT_FAULT_POINT</c> to a point's name and the
/// process ends there with no clean-up, exactly like kill -9. Unset (always, in production)
/// a point costs one string comparison.
/// </summary>
internal static class FaultPoints
{
    /// <summary>A guess is committed, and its KE2 has not left the member.</summary>
    public const string AfterChargeCommitted = "after-charge-committed";

    private static readonly string? Armed = Environment.GetEnvironmentVariable("HSMVAULT_FAULT_POINT");

    public static void Hit(string point)
    {
        if (string.Equals(Armed, point, StringComparison.Ordinal))
        {
            Environment.FailFast($"fault point '{point}' reached (HSMVAULT_FAULT_POINT)");
        }
    }
}
