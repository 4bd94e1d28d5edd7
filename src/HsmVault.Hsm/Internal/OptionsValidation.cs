namespace HsmVault.Hsm.Internal;

/// <summary>Checks <see cref="TokenOptions"/> and copies them, so later changes by the caller have no effect.</summary>
internal static class OptionsValidation
{
    public static TokenOptions ValidatedCopy(TokenOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrWhiteSpace(options.ModulePath))
        {
            throw new TokenConfigurationException("HsmVault:Token:ModulePath is empty; set it to the PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so");
        }

        if (options.MaxConcurrentOperations is < 1 or > 64)
        {
            throw new TokenConfigurationException(
                $"HsmVault:Token:MaxConcurrentOperations is {options.MaxConcurrentOperations}; it must be 1..64 (2 for SoftHSM2)");
        }

        if (options.OperationTimeout <= TimeSpan.Zero || options.OperationTimeout > TimeSpan.FromHours(1))
        {
            throw new TokenConfigurationException(
                $"HsmVault:Token:OperationTimeout is {options.OperationTimeout}; it must be more than 0 and at most 01:00:00");
        }

        if (string.IsNullOrWhiteSpace(options.KeyLabelPrefix))
        {
            throw new TokenConfigurationException("HsmVault:Token:KeyLabelPrefix is empty");
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
}
