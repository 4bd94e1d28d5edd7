using System.Globalization;
using HsmVault.Hsm.Internal;
using Net.Pkcs11Interop.Common;

namespace HsmVault.Hsm;

/// <summary>What a token is needed for: every member, or only the key ceremony between members.</summary>
public enum TokenRequirementScope
{
    /// <summary>Every vault member's token: without it the daemon refuses to start.</summary>
    Member,

    /// <summary>Tokens that give or receive fleet keys in a key ceremony (every member of a fleet of more than one).</summary>
    Ceremony,
}

/// <summary>
/// One thing a token must support, as PKCS#11 mechanisms: satisfied when every mechanism of one
/// of <see cref="Alternatives"/> is in the token's mechanism list.
/// </summary>
/// <param name="Name">What an operator looks for in an HSM's documentation, e.g. <c>CKM_AES_GCM</c>.</param>
/// <param name="Purpose">What the vault uses it for.</param>
/// <param name="Scope">Who needs it.</param>
/// <param name="Alternatives">Sets of mechanism types; any one complete set satisfies the requirement.</param>
public sealed record TokenRequirement(string Name, string Purpose, TokenRequirementScope Scope, IReadOnlyList<IReadOnlyList<ulong>> Alternatives)
{
    /// <summary>Whether <paramref name="mechanisms"/> satisfies this requirement.</summary>
    public bool IsMetBy(IReadOnlySet<ulong> mechanisms)
    {
        ArgumentNullException.ThrowIfNull(mechanisms);
        return Alternatives.Any(set => set.All(mechanisms.Contains));
    }
}

/// <summary>One requirement checked against one token.</summary>
/// <param name="Requirement">The requirement.</param>
/// <param name="Met">Whether the token satisfies it.</param>
public sealed record TokenRequirementResult(TokenRequirement Requirement, bool Met);

/// <summary>What a token supports of <see cref="TokenRequirements.All"/>.</summary>
/// <param name="Token">The token checked; null when only a mechanism list was checked.</param>
/// <param name="Results">Every requirement, in <see cref="TokenRequirements.All"/>'s order.</param>
public sealed record TokenCheckReport(TokenDescription? Token, IReadOnlyList<TokenRequirementResult> Results)
{
    /// <summary>Whether the token can be a vault member's token (every <see cref="TokenRequirementScope.Member"/> requirement met).</summary>
    public bool CanServeAsMember => Results.Where(r => r.Requirement.Scope == TokenRequirementScope.Member).All(r => r.Met);

    /// <summary>Whether the token can also give and receive fleet keys in a key ceremony (needed by every member of a fleet of more than one).</summary>
    public bool CanJoinCeremony => CanServeAsMember && Results.All(r => r.Met);

    /// <summary>The names of the requirements not met, of <paramref name="scope"/> or of every scope.</summary>
    public IReadOnlyList<string> Missing(TokenRequirementScope? scope = null) =>
        [.. Results.Where(r => !r.Met && (scope is null || r.Requirement.Scope == scope)).Select(r => r.Requirement.Name)];

    /// <summary>
    /// What <c>hsmvault token check</c> prints: one line per requirement (<c>ok</c> or
    /// <c>missing</c>), one per object requirement a mechanism list cannot show (<c>check</c>),
    /// then <see cref="Verdict"/>.
    /// </summary>
    public IReadOnlyList<string> Lines()
    {
        var lines = new List<string>();
        foreach (var result in Results)
        {
            var scope = result.Requirement.Scope == TokenRequirementScope.Ceremony ? " [key ceremony]" : "";
            lines.Add($"{(result.Met ? "ok     " : "missing")}  {result.Requirement.Name}{scope}: {result.Requirement.Purpose}");
        }

        foreach (var requirement in TokenRequirements.ObjectRequirements)
        {
            lines.Add($"check    {requirement} (not shown by a mechanism list: see the token's documentation)");
        }

        lines.Add(Verdict);
        return lines;
    }

    /// <summary>The one-line verdict <c>hsmvault token check</c> prints.</summary>
    public string Verdict
    {
        get
        {
            var name = Token is null ? "this token" : $"token '{Token.Label}' ({Token.ManufacturerId} {Token.Model})";
            if (!CanServeAsMember)
            {
                return $"{name} cannot serve as a vault member: it lacks {string.Join(", ", Missing(TokenRequirementScope.Member))}";
            }

            return CanJoinCeremony
                ? $"{name} can serve as a vault member, in a fleet of one or in a fleet whose keys it gives or receives by key ceremony"
                : $"{name} can serve as a vault member of a fleet of one only: for a key ceremony it lacks {string.Join(", ", Missing(TokenRequirementScope.Ceremony))}";
        }
    }
}

/// <summary>
/// The one list of what a vault member's token must support, read off what the token layer
/// calls: <see cref="Pkcs11VaultToken"/>, <see cref="TokenProvisioner"/> and <see cref="FleetCeremony"/>.
/// The daemon checks it at start-up; <c>hsmvault token check</c> prints it; the README's
/// configuration reference lists it.
/// </summary>
/// <remarks>
/// Besides mechanisms, a member's token must keep private, sensitive, non-extractable token
/// objects (CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE true, CKA_EXTRACTABLE false) and small private
/// token objects for the vault's data (private generic-secret objects whose CKA_ID carries the data,
/// rewritten in place where the token allows it; else a new CKO_DATA or such object per write). Those are not in a mechanism
/// list; <see cref="ObjectRequirements"/> names them.
/// </remarks>
public static class TokenRequirements
{
    /// <summary>Every requirement, member requirements first.</summary>
    public static IReadOnlyList<TokenRequirement> All { get; } =
    [
        One("CKM_SHA512_HMAC", "RFC 9807 Expand of the OPRF seed into each user's OPRF key", TokenRequirementScope.Member, CKM.CKM_SHA512_HMAC),
        One("CKM_AES_GCM", "sealing records, tickets and the OPAQUE server key (single-part AES-256-GCM, 12-byte IV, 16-byte tag)", TokenRequirementScope.Member, CKM.CKM_AES_GCM),
        One("CKM_AES_KEY_GEN", "generating the record key (AES-256)", TokenRequirementScope.Member, CKM.CKM_AES_KEY_GEN),
        One("CKM_GENERIC_SECRET_KEY_GEN", "generating the 64-byte OPRF seed", TokenRequirementScope.Member, CKM.CKM_GENERIC_SECRET_KEY_GEN),
        new(
            "CKM_EC_EDWARDS_KEY_PAIR_GEN + CKM_EDDSA, or CKM_EC_KEY_PAIR_GEN + CKM_ECDSA (P-256)",
            "the fleet signing key and this member's identity key (Ed25519 where the token has it, else ECDSA P-256 over a SHA-256 digest)",
            TokenRequirementScope.Member,
            [[Pkcs11Constants.CkmEcEdwardsKeyPairGen, Pkcs11Constants.CkmEddsa], [(ulong)CKM.CKM_EC_KEY_PAIR_GEN, (ulong)CKM.CKM_ECDSA]]),
        new(
            "CKM_EC_KEY_PAIR_GEN + CKM_ECDH1_DERIVE (P-256, CKD_NULL)",
            "the key ceremony: ephemeral P-256 keys whose ECDH secret is the wrapping key between two tokens",
            TokenRequirementScope.Ceremony,
            [[(ulong)CKM.CKM_EC_KEY_PAIR_GEN, (ulong)CKM.CKM_ECDH1_DERIVE]]),
        new(
            "CKM_AES_KEY_WRAP_PAD or CKM_AES_KEY_WRAP_KWP (RFC 5649)",
            "the key ceremony: wrapping and unwrapping the fleet keys (which of the two does RFC 5649 is found by a known-answer test per token)",
            TokenRequirementScope.Ceremony,
            [[(ulong)CKM.CKM_AES_KEY_WRAP_PAD], [KeyWrapNegotiation.CkmAesKeyWrapKwp]]),
    ];

    /// <summary>What a member's token must do that a mechanism list does not show.</summary>
    public static IReadOnlyList<string> ObjectRequirements { get; } =
    [
        "private, sensitive, non-extractable token keys (CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE true; CKA_EXTRACTABLE false), CKA_EXTRACTABLE settable from true to false",
        "small private token objects for the vault's data: private generic-secret objects whose CKA_ID carries the data (rewritten in place where CKA_ID is modifiable; else CKO_DATA or such an object created anew per write)",
        "key attributes readable for deployment evidence: CKA_LOCAL, CKA_NEVER_EXTRACTABLE, CKA_ALWAYS_SENSITIVE",
    ];

    /// <summary>Checks a mechanism list (e.g. from C_GetMechanismList) against <see cref="All"/>.</summary>
    public static TokenCheckReport Check(IEnumerable<ulong> mechanisms, TokenDescription? token = null)
    {
        ArgumentNullException.ThrowIfNull(mechanisms);
        var present = mechanisms.ToHashSet();
        return new TokenCheckReport(token, [.. All.Select(r => new TokenRequirementResult(r, r.IsMetBy(present)))]);
    }

    /// <summary>
    /// Finds the token (no login: the mechanism list is public) and checks its mechanism list.
    /// </summary>
    /// <exception cref="TokenConfigurationException">The module or token cannot be found.</exception>
    public static TokenCheckReport Check(TokenOptions options)
    {
        var copy = TokenOptionsValidator.Check(options, logsIn: false);
        var library = Pkcs11Modules.Get(copy.ModulePath, copy.ModuleInitArgs);
        var (slot, description) = TokenLocator.Find(library, copy);
        return Check(slot.GetMechanismList().Select(m => (ulong)m), description);
    }

    /// <summary>Throws unless <paramref name="report"/> shows a token that can serve as a vault member.</summary>
    internal static void RequireMember(TokenCheckReport report)
    {
        if (!report.CanServeAsMember)
        {
            var missing = report.Results.Where(r => !r.Met && r.Requirement.Scope == TokenRequirementScope.Member)
                .Select(r => string.Create(CultureInfo.InvariantCulture, $"{r.Requirement.Name} ({r.Requirement.Purpose})"));
            var name = report.Token is null ? "the token" : $"token '{report.Token.Label}' ({report.Token.ManufacturerId} {report.Token.Model})";
            throw new TokenConfigurationException(
                $"{name} cannot serve as a vault member: it lacks {string.Join("; ", missing)}. `hsmvault token check` lists everything a member's token needs");
        }
    }

    private static TokenRequirement One(string name, string purpose, TokenRequirementScope scope, CKM mechanism) =>
        new(name, purpose, scope, [[(ulong)mechanism]]);
}
