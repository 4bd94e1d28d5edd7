using HsmVault.Protocol;
using System.Globalization;
using Microsoft.Extensions.Options;

namespace HsmVault.Vault;

/// <summary>Every rule for <see cref="VaultOptions"/>, checked at start-up.</summary>
public sealed partial class VaultOptionsValidator : IValidateOptions<VaultOptions>
{
    private static readonly TimeSpan MinSessionTime = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan MaxSessionTime = TimeSpan.FromHours(1);

    /// <inheritdoc/>
    public ValidateOptionsResult Validate(string? name, VaultOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        Identifier(failures, nameof(options.FleetId), options.FleetId);
        Identifier(failures, nameof(options.MemberId), options.MemberId);
        if (string.IsNullOrWhiteSpace(options.DataDirectory))
        {
            failures.Add($"{VaultOptions.SectionName}:DataDirectory is required: the folder of the member's database and log, apart from the token folder");
        }

        if (options.OpaqueContext is null)
        {
            failures.Add($"{VaultOptions.SectionName}:OpaqueContext must be a string (empty by default)");
        }

        InRange(failures, nameof(options.Argon2MemoryKib), options.Argon2MemoryKib, 8, 4 * 1024 * 1024);
        InRange(failures, nameof(options.Argon2Iterations), options.Argon2Iterations, 1, 64);
        InRange(failures, nameof(options.Argon2Parallelism), options.Argon2Parallelism, 1, 64);
        InRange(failures, nameof(options.DefaultGuessLimit), options.DefaultGuessLimit, RecordLimits.MinGuessLimit, RecordLimits.MaxGuessLimit);
        InRange(failures, nameof(options.RecoverySessionTimeout), options.RecoverySessionTimeout, MinSessionTime, MaxSessionTime);
        InRange(failures, nameof(options.RegistrationTicketLifetime), options.RegistrationTicketLifetime, MinSessionTime, MaxSessionTime);
        InRange(failures, nameof(options.MaxRecoverySessions), options.MaxRecoverySessions, 1, 1_000_000);
        InRange(failures, nameof(options.MaxRecoverySessionsPerUser), options.MaxRecoverySessionsPerUser, 1, 1_000);
        if (options.MaxRecoverySessionsPerTenant is { } perTenant)
        {
            InRange(failures, nameof(options.MaxRecoverySessionsPerTenant), perTenant, 1, 1_000_000);
        }

        InRange(failures, nameof(options.StateDigestInterval), options.StateDigestInterval, 1, 1_000_000);
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    private static void Identifier(List<string> failures, string key, string? value)
    {
        if (!Identifiers.IsValid(value))
        {
            failures.Add($"{VaultOptions.SectionName}:{key} is '{value}'; it must be 1-64 letters, digits, '.', '_' or '-'");
        }
    }

    private static void InRange<T>(List<string> failures, string key, T value, T min, T max)
        where T : IComparable<T>
    {
        if (value.CompareTo(min) < 0 || value.CompareTo(max) > 0)
        {
            failures.Add(string.Create(CultureInfo.InvariantCulture, $"{VaultOptions.SectionName}:{key} is {value}; it must be {min} to {max}"));
        }
    }
}
