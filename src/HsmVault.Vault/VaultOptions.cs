using HsmVault.Crypto.Opaque;

namespace HsmVault.Vault;

/// <summary>The vault's settings, bound from the <c>HsmVault</c> configuration section; every rule is in <see cref="VaultOptionsValidator"/>.</summary>
public sealed class VaultOptions
{
    /// <summary>Configuration section these options bind from.</summary>
    public const string SectionName = "HsmVault";

    /// <summary>The fleet's identifier: the audience of callers' JWTs, and bound into every sealed record.</summary>
    public string FleetId { get; set; } = "";

    /// <summary>This member's identifier within the fleet.</summary>
    public string MemberId { get; set; } = "";

    /// <summary>Folder of the member's database and log. Keep it apart from the token folder.</summary>
    public string DataDirectory { get; set; } = "";

    /// <summary>
    /// OPAQUE context string (RFC 9807 section 6.1), bound into every login's preamble as its
    /// UTF-8 bytes and published to clients by GetFleetInfo. Empty by default, because the common
    /// RFC 9807 libraries at their defaults use the empty context and some (opaque-ke through
    /// <c>@serenity-kit/opaque</c>) cannot use any other; a non-empty context is an operator's
    /// choice that every client must then be able to set.
    /// </summary>
    public string OpaqueContext { get; set; } = "";

    /// <summary>Argon2id memory in KiB for the clients' KSF. Default: RFC 9106's memory-constrained choice.</summary>
    public int Argon2MemoryKib { get; set; } = Argon2idParameters.Rfc9106MemoryConstrained.MemoryKib;

    /// <summary>Argon2id passes.</summary>
    public int Argon2Iterations { get; set; } = Argon2idParameters.Rfc9106MemoryConstrained.Iterations;

    /// <summary>Argon2id lanes.</summary>
    public int Argon2Parallelism { get; set; } = Argon2idParameters.Rfc9106MemoryConstrained.Parallelism;

    /// <summary>Guesses allowed when a registration asks for none.</summary>
    public int DefaultGuessLimit { get; set; } = 10;

    /// <summary>How long a started recovery may wait for its KE3.</summary>
    public TimeSpan RecoverySessionTimeout { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>How long a registration may take between StartRegistration and FinishRegistration.</summary>
    public TimeSpan RegistrationTicketLifetime { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Recovery sessions in flight at once on this member; more are refused with ResourceExhausted.</summary>
    public int MaxRecoverySessions { get; set; } = 10_000;

    /// <summary>Recovery sessions one user may have in flight on this member at once.</summary>
    public int MaxRecoverySessionsPerUser { get; set; } = 4;

    /// <summary>
    /// Recovery sessions one tenant may have in flight on this member at once, so that one
    /// tenant cannot fill the table for the others. Default: half of <see cref="MaxRecoverySessions"/>.
    /// </summary>
    public int? MaxRecoverySessionsPerTenant { get; set; }

    /// <summary>How users appear in logs and audit events: a pseudonym (default) or their escaped ids.</summary>
    public UserLogForm LogUserIds { get; set; } = UserLogForm.Hashed;

    /// <summary>Every how many log entries the members compare digests of their state.</summary>
    public int StateDigestInterval { get; set; } = 64;
}

/// <summary>How a user is named in logs.</summary>
public enum UserLogForm
{
    /// <summary>A pseudonym, <see cref="UserIdentity.Pseudonym"/>.</summary>
    Hashed,

    /// <summary>tenant/user with everything outside printable ASCII escaped.</summary>
    Escaped,
}
