using System.Security.Cryptography;
using HsmVault.Hsm;

namespace HsmVault.Evidence;

/// <summary>What to check a document against, beyond the document itself.</summary>
public sealed class DeploymentVerifierOptions
{
    /// <summary>A published daemon folder whose hash must equal the evidence's; null to leave the build unchecked against a folder.</summary>
    public string? DaemonBuildDirectory { get; init; }

    /// <summary>Where to look up the evidence digest logged for the fleet's epoch; null to skip that check.</summary>
    public IEvidenceLog? Log { get; init; }
}

/// <summary>
/// Checks deployment evidence end to end and reports each check for a person to follow
/// (README, "Deployment evidence"). Every check runs even when an earlier one failed, so the
/// report names everything wrong; only a file that cannot be read at all stops at check 1.
/// </summary>
public static class DeploymentVerifier
{
    private static readonly VaultKeyRole[] FleetRoles = [VaultKeyRole.OprfSeed, VaultKeyRole.RecordKey, VaultKeyRole.FleetSigningKey];

    /// <summary>Verifies the evidence file <paramref name="file"/> (its bytes), named <paramref name="source"/> in the report.</summary>
    public static async Task<VerificationReport> VerifyAsync(
        byte[] file, string source, DeploymentVerifierOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(file);
        options ??= new DeploymentVerifierOptions();
        var digest = SHA256.HashData(file);
        var checks = new List<VerificationCheck>();
        DeploymentEvidence evidence;
        try
        {
            evidence = DeploymentEvidence.Decode(file);
        }
        catch (EvidenceFormatException e)
        {
            checks.Add(Check(Canonical, [e.Message]));
            return new VerificationReport(source, digest, null, checks);
        }

        checks.Add(Check(Canonical, [], [$"format {DeploymentEvidence.Format}; re-encodes to the same {file.Length} bytes"]));
        var body = evidence.Body;
        var chain = TranscriptChain.Analyse(body);
        checks.Add(Check(DocumentSignatures, DocumentSignatureFailures(evidence), [.. body.Members.Select(m => $"{m.Name}: identity key {m.IdentityKey.Fingerprint()} ({m.IdentityKey.Algorithm})")]));
        checks.Add(Check(DistinctMembers, MemberFailures(body), [.. body.Members.Select(m => $"{m.Name}: {m.Token.Manufacturer} {m.Token.Model}, firmware {m.Token.Firmware}, hardware {m.Token.Hardware}")]));
        checks.Add(Check(StepSignatures, StepSignatureFailures(body), [$"{body.Transcript.Count} steps, each signed by its acting member's identity key"]));
        checks.Add(Check(Chain, chain.Failures, chain.Summary));
        checks.Add(Check(Attributes, AttributeFailures(body, chain), [$"{body.Members.Sum(m => m.Keys.Count)} keys in {body.Members.Count} tokens"]));
        checks.Add(Check(CheckValues, CheckValueFailures(body), [$"fleet signing key {body.FleetSigningKey.Fingerprint()} ({body.FleetSigningKey.Algorithm})"]));
        checks.Add(BuildCheck(body.DaemonBuild, options.DaemonBuildDirectory));
        if (options.Log is { } log)
        {
            checks.Add(await LogCheckAsync(log, body, digest, cancellationToken).ConfigureAwait(false));
        }

        return new VerificationReport(source, digest, evidence, [.. checks.Select((c, i) => c with { Number = i + 1 })]);
    }

    private static readonly (string What, string Why) Canonical = (
        "The file is deployment evidence in its one canonical encoding",
        "the digest the fleet's validation bundle carries and the witness logs is SHA-256 of these exact bytes; one document has one digest, and a reformatted or extended file is not the one that was signed");

    private static readonly (string What, string Why) DocumentSignatures = (
        "Every member's token signed the whole document with its identity key",
        "each identity key was generated inside its member's token and can never leave it, so no person and no other machine could have added, removed or changed any line below");

    private static readonly (string What, string Why) DistinctMembers = (
        "The members are distinct tokens, each described by C_GetTokenInfo, each with one of every vault key",
        "a fleet whose 'members' are one token under several names has no quorum of independent tokens");

    private static readonly (string What, string Why) StepSignatures = (
        "Every ceremony step is signed by the token of the member that performed it",
        "the transcript is each token's own statement of what it did, not the operator's account of it");

    private static readonly (string What, string Why) Chain = (
        "The transcript shows the chain: generated on one member, wrapped under an ECDH-derived key, unwrapped on every other member, then locked",
        "this is the only way the fleet keys are allowed to reach a second token: a wrap and its unwrap name the same ephemeral ECDH points and the same wrapped blob, so the wrapping key existed only in those two tokens, and the originals stopped being extractable once every member had its copy");

    private static readonly (string What, string Why) Attributes = (
        "Every key is sensitive and not extractable, and was generated in its token or unwrapped into it as the transcript shows",
        "CKA_EXTRACTABLE false means the token will never export the key, even wrapped; CKA_SENSITIVE means never in plaintext; CKA_LOCAL with CKA_ALWAYS_SENSITIVE and CKA_NEVER_EXTRACTABLE means the key was born in the token and never left it (PKCS#11 sets the last two false for unwrapped keys, which is why the transcript must account for every copy)");

    private static readonly (string What, string Why) CheckValues = (
        "The key check values agree: every member holds the same OPRF seed, record key and fleet signing key, and its own identity key",
        "a member holding a different key would answer differently from the others; the check values (HMAC-SHA512 and AES-GMAC of a fixed block, SHA-256 of public keys) show equality without revealing the keys");

    private static VerificationCheck Check((string What, string Why) check, List<string> failures, List<string>? passDetails = null) =>
        new(0, check.What, check.Why, failures.Count == 0, failures.Count == 0 ? passDetails ?? [] : failures);

    private static List<string> DocumentSignatureFailures(DeploymentEvidence evidence)
    {
        var failures = new List<string>();
        var signed = DeploymentEvidence.SignedBody(evidence.Body);
        var members = evidence.Body.Members;
        foreach (var signature in evidence.Signatures)
        {
            if (signature.Member < 0 || signature.Member >= members.Count)
            {
                failures.Add($"a signature names member {signature.Member}, which the document does not have");
            }
        }

        for (var i = 0; i < members.Count; i++)
        {
            var mine = evidence.Signatures.Where(s => s.Member == i).ToList();
            if (mine.Count == 0)
            {
                failures.Add($"{members[i].Name} did not sign the document: its signature is missing");
            }
            else if (mine.Count > 1)
            {
                failures.Add($"{members[i].Name} has {mine.Count} signatures; exactly one is expected");
            }
            else if (!mine[0].Signature.IsBy(members[i].IdentityKey, signed))
            {
                failures.Add($"{members[i].Name}: the signature does not verify under its identity key {members[i].IdentityKey.Fingerprint()}: " +
                    "the document was changed after it was signed, or this token never signed it");
            }
        }

        return failures;
    }

    private static List<string> MemberFailures(EvidenceBody body)
    {
        var failures = new List<string>();
        if (body.Members.Count == 0)
        {
            failures.Add("the document lists no members");
        }

        for (var i = 0; i < body.Members.Count; i++)
        {
            var member = body.Members[i];
            if (member.Index != i)
            {
                failures.Add($"members[{i}] says it is member {member.Index}; members must be listed by index from 0");
            }

            foreach (var role in FleetRoles.Append(VaultKeyRole.MemberIdentityKey))
            {
                var count = member.Keys.Count(k => k.Role == role);
                if (count != 1)
                {
                    failures.Add($"{member.Name} lists {count} keys of role {RoleNames.Name(role)}; exactly one is expected");
                }
            }
        }

        foreach (var same in body.Members.GroupBy(m => (m.Token.Manufacturer, m.Token.Model, m.Token.Serial)).Where(g => g.Count() > 1))
        {
            failures.Add($"{string.Join(" and ", same.Select(m => m.Name))} are the same token ({same.Key.Manufacturer} {same.Key.Model} serial {same.Key.Serial})");
        }

        foreach (var same in body.Members.GroupBy(m => Convert.ToHexString(m.IdentityKey.PublicKey)).Where(g => g.Count() > 1))
        {
            failures.Add($"{string.Join(" and ", same.Select(m => m.Name))} share one identity key");
        }

        return failures;
    }

    private static List<string> StepSignatureFailures(EvidenceBody body)
    {
        var failures = new List<string>();
        for (var i = 0; i < body.Transcript.Count; i++)
        {
            var (step, signature) = (body.Transcript[i].Step, body.Transcript[i].Signature);
            var name = $"step {i + 1} ({CeremonyStep.ActionName(step.Action)} on member {step.Actor})";
            if (step.Sequence != (ulong)i + 1)
            {
                failures.Add($"{name} is numbered {step.Sequence}; steps are numbered from 1 in order");
            }

            if (step.Fleet != body.Fleet || step.Epoch != body.Epoch)
            {
                failures.Add($"{name} belongs to fleet '{step.Fleet}' epoch {step.Epoch}, not to this document's fleet '{body.Fleet}' epoch {body.Epoch}");
            }

            if (step.Actor < 0 || step.Actor >= body.Members.Count)
            {
                failures.Add($"{name} names a member the document does not have");
            }
            else if (!signature.IsBy(body.Members[step.Actor].IdentityKey, step.SignedBytes()))
            {
                failures.Add($"{name}: the signature does not verify under {body.Members[step.Actor].Name}'s identity key: the step was changed, or that token did not sign it");
            }
        }

        return failures;
    }

    private static List<string> AttributeFailures(EvidenceBody body, TranscriptChain chain)
    {
        var failures = new List<string>();
        foreach (var member in body.Members)
        {
            foreach (var key in member.Keys)
            {
                var a = key.Attributes;
                var name = $"{member.Name} key '{key.Label}' ({RoleNames.Name(key.Role)})";
                if (a.Extractable != false)
                {
                    failures.Add($"{name}: CKA_EXTRACTABLE is {Show(a.Extractable)}: the token would export it");
                }

                if (a.Sensitive != true)
                {
                    failures.Add($"{name}: CKA_SENSITIVE is {Show(a.Sensitive)}: the token would reveal its value");
                }

                if (key.Role == VaultKeyRole.MemberIdentityKey || member.Index == chain.Origin)
                {
                    RequireBornInToken(failures, name, a, key.Role == VaultKeyRole.MemberIdentityKey ? null : chain.LockStepOf(key.Label));
                }
                else if (a.Local == true)
                {
                    failures.Add($"{name}: CKA_LOCAL is true: it was generated in this token, so it is not the fleet key member {chain.Origin} generated");
                }
                else if (!chain.IsUnwrapped(member.Index, key.Label))
                {
                    failures.Add($"{name}: CKA_LOCAL is {Show(a.Local)} (not generated here), and no verified unwrap step of the transcript brought it here");
                }
            }
        }

        return failures;
    }

    /// <summary>
    /// A key that must have been generated in its token: CKA_LOCAL and CKA_ALWAYS_SENSITIVE true,
    /// and CKA_NEVER_EXTRACTABLE true unless it was extractable only for the ceremony, locked at
    /// <paramref name="lockStep"/>.
    /// </summary>
    private static void RequireBornInToken(List<string> failures, string name, TokenKeyAttributes a, ulong? lockStep)
    {
        if (a.Local != true)
        {
            failures.Add($"{name}: CKA_LOCAL is {Show(a.Local)}: the token did not generate it (it was imported or unwrapped)");
        }

        if (a.AlwaysSensitive != true)
        {
            failures.Add($"{name}: CKA_ALWAYS_SENSITIVE is {Show(a.AlwaysSensitive)}: its value was once readable in plaintext");
        }

        if (a.NeverExtractable != true && lockStep is null)
        {
            failures.Add($"{name}: CKA_NEVER_EXTRACTABLE is {Show(a.NeverExtractable)}: it was extractable at some time, and no verified ceremony accounts for that");
        }
    }

    private static List<string> CheckValueFailures(EvidenceBody body)
    {
        var failures = new List<string>();
        foreach (var role in new[] { VaultKeyRole.OprfSeed, VaultKeyRole.RecordKey })
        {
            var values = body.Members.SelectMany(m => m.Keys.Where(k => k.Role == role).Select(k => (Member: m, k.CheckValue))).ToList();
            if (values.Any(v => v.CheckValue.Length != 16))
            {
                failures.Add($"a {RoleNames.Name(role)} check value is not 16 bytes");
            }

            if (values.Select(v => Convert.ToHexString(v.CheckValue)).Distinct().Count() > 1)
            {
                failures.Add($"the members' {RoleNames.Name(role)} check values differ: " +
                    string.Join("; ", values.Select(v => $"member {v.Member.Index}: {Convert.ToHexStringLower(v.CheckValue)}")));
            }
        }

        var fleetKey = SHA256.HashData(body.FleetSigningKey.PublicKey);
        foreach (var member in body.Members)
        {
            foreach (var key in member.Keys.Where(k => k.Role == VaultKeyRole.FleetSigningKey && !k.CheckValue.AsSpan().SequenceEqual(fleetKey)))
            {
                failures.Add($"{member.Name} key '{key.Label}': its public key is not the fleet signing key {body.FleetSigningKey.Fingerprint()}");
            }

            var identity = SHA256.HashData(member.IdentityKey.PublicKey);
            foreach (var key in member.Keys.Where(k => k.Role == VaultKeyRole.MemberIdentityKey && !k.CheckValue.AsSpan().SequenceEqual(identity)))
            {
                failures.Add($"{member.Name} key '{key.Label}': its public key is not the identity key the document lists for it");
            }
        }

        return failures;
    }

    private static VerificationCheck BuildCheck(DaemonBuild build, string? directory)
    {
        var check = (What: "The daemon build the members run is named by its hash",
            Why: "anyone can rebuild or download the published daemon and compare; the README says how to reproduce the hash with coreutils");
        var hex = Convert.ToHexStringLower(build.Sha256);
        if (build.Sha256.Length != 32 || build.Files == 0)
        {
            return Check(check, [$"the daemon build hash is not a SHA-256 of a non-empty folder ({build.Sha256.Length} bytes, {build.Files} files)"]);
        }

        if (directory is null)
        {
            return Check(check, [], [$"sha256 {hex} over {build.Files} files; not compared with a folder (give --daemon-build DIR to compare)"]);
        }

        try
        {
            var local = DaemonBuildHash.Compute(directory);
            return local.Sha256.AsSpan().SequenceEqual(build.Sha256)
                ? Check(check, [], [$"sha256 {hex} over {build.Files} files equals the hash of '{directory}'"])
                : Check(check, [$"the evidence names build {hex} ({build.Files} files), but '{directory}' hashes to {Convert.ToHexStringLower(local.Sha256)} ({local.Files} files)"]);
        }
        catch (IOException e)
        {
            return Check(check, [$"could not hash '{directory}': {e.Message}"]);
        }
    }

    private static async Task<VerificationCheck> LogCheckAsync(IEvidenceLog log, EvidenceBody body, byte[] digest, CancellationToken cancellationToken)
    {
        var check = (What: $"The witness logged exactly this evidence for fleet '{body.Fleet}' epoch {body.Epoch}",
            Why: "clients trust only the bundle the witness logged; if its evidence digest is this file's, this is the evidence of the fleet clients talk to, and the operator cannot show different evidence to different people");
        try
        {
            var logged = await log.FindAsync(body.Fleet, body.Epoch, cancellationToken).ConfigureAwait(false);
            return logged.EvidenceDigest.AsSpan().SequenceEqual(digest)
                ? Check(check, [], [$"{logged.Description}; its evidence digest is this file's"])
                : Check(check, [$"{logged.Description}, but its evidence digest is {Convert.ToHexStringLower(logged.EvidenceDigest)}, not this file's {Convert.ToHexStringLower(digest)}"]);
        }
        catch (EvidenceLogException e)
        {
            return Check(check, [e.Message]);
        }
    }

    private static string Show(bool? value) => value switch { true => "true", false => "false", null => "unreadable" };
}
