using HsmVault.Crypto.Opaque;

namespace HsmVault.Cli.Commands;

/// <summary>
/// What the operator commands read of a member's <c>HsmVault</c> configuration section (the daemon
/// binds the whole section as its vault options): who the member is, and the OPAQUE configuration a
/// validation bundle publishes. The Argon2id defaults are the fleet's, from the one place that
/// defines them, so a bundle built from a file that leaves them out names what the daemon serves.
/// </summary>
internal sealed class MemberSettings
{
    /// <summary>The configuration section the daemon's vault options bind from.</summary>
    public const string SectionName = "HsmVault";

    /// <summary>The fleet's identifier.</summary>
    public string FleetId { get; set; } = "";

    /// <summary>This member's identifier within the fleet.</summary>
    public string MemberId { get; set; } = "";

    /// <summary>OPAQUE context string, bound into every login as its UTF-8 bytes.</summary>
    public string OpaqueContext { get; set; } = "";

    /// <summary>Argon2id memory in KiB for the clients' KSF.</summary>
    public int Argon2MemoryKib { get; set; } = Argon2idParameters.Rfc9106MemoryConstrained.MemoryKib;

    /// <summary>Argon2id passes.</summary>
    public int Argon2Iterations { get; set; } = Argon2idParameters.Rfc9106MemoryConstrained.Iterations;

    /// <summary>Argon2id lanes.</summary>
    public int Argon2Parallelism { get; set; } = Argon2idParameters.Rfc9106MemoryConstrained.Parallelism;
}
