namespace HsmVault.Hsm;

/// <summary>
/// Where the token is and how to log in. Bound from the <c>HsmVault:Token</c> configuration
/// section. The PIN never comes from the command line: only from a file or an environment
/// variable. Every rule is in <see cref="TokenOptionsValidator"/>.
/// </summary>
public sealed class TokenOptions
{
    /// <summary>Configuration section these options bind from.</summary>
    public const string SectionName = "HsmVault:Token";

    /// <summary>Path of the PKCS#11 module, e.g. <c>/usr/lib/softhsm/libsofthsm2.so</c>.</summary>
    public string ModulePath { get; set; } = "/usr/lib/softhsm/libsofthsm2.so";

    /// <summary>Token label to use. Either this or <see cref="TokenSerial"/> (or both) must be set.</summary>
    public string? TokenLabel { get; set; }

    /// <summary>Token serial number to use.</summary>
    public string? TokenSerial { get; set; }

    /// <summary>File holding the user PIN (first line). Should be readable by the daemon only.</summary>
    public string? PinFile { get; set; }

    /// <summary>Name of the environment variable holding the user PIN.</summary>
    public string? PinEnvironmentVariable { get; set; }

    /// <summary>
    /// Cap on token operations running at once. SoftHSM2 crashes with private-key operations
    /// from four or more threads (SoftHSM issue 688), so the default is 2.
    /// </summary>
    public int MaxConcurrentOperations { get; set; } = 2;

    /// <summary>
    /// How long an operation waits for one of the <see cref="MaxConcurrentOperations"/> slots
    /// before the token is reported unavailable (gRPC UNAVAILABLE), so a hung token cannot pin
    /// every thread that calls it.
    /// </summary>
    public TimeSpan OperationTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Prefix of the labels of the vault's objects in the token.</summary>
    public string KeyLabelPrefix { get; set; } = "hsmvault";

    /// <summary>
    /// Optional string passed to C_Initialize as pReserved, for modules that need one
    /// (NSS softoken's configuration string).
    /// </summary>
    public string? ModuleInitArgs { get; set; }
}
