using HsmVault.Crypto.Signatures;

namespace HsmVault.Hsm;

/// <summary>How <see cref="TokenProvisioner.ProvisionFleetKeys"/> generates the fleet keys.</summary>
public sealed class FleetKeyGenerationOptions
{
    /// <summary>
    /// Keep fleet keys that already exist and generate only the missing ones. Off by default:
    /// provisioning a token that has fleet keys is refused, so a fleet's keys are never
    /// silently replaced.
    /// </summary>
    public bool KeepExisting { get; init; }

    /// <summary>
    /// Generate the secret keys with CKA_EXTRACTABLE true, so <see cref="FleetCeremony.CopyFleetKeys"/>
    /// can wrap them for the other members' tokens. Lock them afterwards with
    /// <see cref="FleetCeremony.LockFleetKeys"/>. Off by default.
    /// </summary>
    public bool ExtractableForCeremony { get; init; }

    /// <summary>
    /// The signing key's algorithm; null picks Ed25519 when the token can generate it
    /// (CKM_EC_EDWARDS_KEY_PAIR_GEN) — and, with <see cref="ExtractableForCeremony"/>, wrap it —
    /// and ECDSA P-256 otherwise. SoftHSM2 2.6 cannot wrap Ed25519 keys, so fleets whose keys
    /// are copied by ceremony on SoftHSM2 sign with ECDSA P-256.
    /// </summary>
    public SignatureAlgorithm? SignatureAlgorithm { get; init; }
}

/// <summary>What <see cref="TokenProvisioner.ProvisionFleetKeys"/> found and did.</summary>
/// <param name="Token">The token provisioned.</param>
/// <param name="SigningKey">The fleet signing key's public half.</param>
/// <param name="Created">Labels of the keys generated now.</param>
/// <param name="Kept">Labels of the keys that already existed and were kept.</param>
public sealed record FleetKeyProvisioningResult(
    TokenDescription Token,
    SigningKeyDescription SigningKey,
    IReadOnlyList<string> Created,
    IReadOnlyList<string> Kept);
