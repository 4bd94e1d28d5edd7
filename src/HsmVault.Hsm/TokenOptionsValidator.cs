using Microsoft.Extensions.Options;

namespace HsmVault.Hsm;

/// <summary>
/// Every rule for <see cref="TokenOptions"/>, in one place: checked at start-up by the hosts that
/// bind them, and by <see cref="Check"/> when a command line or a test opens a token directly.
/// </summary>
public sealed class TokenOptionsValidator : IValidateOptions<TokenOptions>
{
    /// <summary>Most token operations that may run at once.</summary>
    public const int MaxConcurrentOperationsLimit = 64;

    private static readonly TimeSpan MaxOperationTimeout = TimeSpan.FromHours(1);

    /// <inheritdoc/>
    public ValidateOptionsResult Validate(string? name, TokenOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = Failures(options, logsIn: true).ToList();
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    /// <summary>Checks <paramref name="options"/> and copies them, so later changes by the caller have no effect.</summary>
    /// <param name="options">The options to check.</param>
    /// <param name="logsIn">Whether the caller logs in, and so needs a PIN (`hsmvault token check` does not).</param>
    /// <exception cref="TokenConfigurationException">A rule is broken; the message names every broken one.</exception>
    public static TokenOptions Check(TokenOptions options, bool logsIn = true)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = Failures(options, logsIn).ToList();
        if (failures.Count > 0)
        {
            throw new TokenConfigurationException(string.Join("; ", failures));
        }

        return new TokenOptions
        {
            ModulePath = options.ModulePath,
            TokenLabel = options.TokenLabel,
            TokenSerial = options.TokenSerial,
            PinFile = options.PinFile,
            PinEnvironmentVariable = options.PinEnvironmentVariable,
            MaxConcurrentOperations = options.MaxConcurrentOperations,
            KeyLabelPrefix = options.KeyLabelPrefix,
            ModuleInitArgs = options.ModuleInitArgs,
            OperationTimeout = options.OperationTimeout,
        };
    }

    private static IEnumerable<string> Failures(TokenOptions options, bool logsIn)
    {
        const string Section = TokenOptions.SectionName;
        if (string.IsNullOrWhiteSpace(options.ModulePath))
        {
            yield return $"{Section}:ModulePath is empty; set it to the PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so";
        }

        if (string.IsNullOrWhiteSpace(options.TokenLabel) && string.IsNullOrWhiteSpace(options.TokenSerial))
        {
            yield return $"{Section} needs TokenLabel or TokenSerial to find the token";
        }

        if (logsIn && string.IsNullOrWhiteSpace(options.PinFile) && string.IsNullOrWhiteSpace(options.PinEnvironmentVariable))
        {
            yield return $"{Section} needs PinFile or PinEnvironmentVariable; the PIN is never taken from the command line";
        }

        if (options.MaxConcurrentOperations is < 1 or > MaxConcurrentOperationsLimit)
        {
            yield return $"{Section}:MaxConcurrentOperations is {options.MaxConcurrentOperations}; it must be 1..{MaxConcurrentOperationsLimit} (2 for SoftHSM2)";
        }

        if (options.OperationTimeout <= TimeSpan.Zero || options.OperationTimeout > MaxOperationTimeout)
        {
            yield return $"{Section}:OperationTimeout is {options.OperationTimeout}; it must be more than 0 and at most {MaxOperationTimeout}";
        }

        if (string.IsNullOrWhiteSpace(options.KeyLabelPrefix))
        {
            yield return $"{Section}:KeyLabelPrefix is empty";
        }
    }
}
