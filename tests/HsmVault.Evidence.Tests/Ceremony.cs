using HsmVault.Hsm;
using HsmVault.Testing;

namespace HsmVault.Evidence.Tests;

/// <summary>A real key ceremony between SoftHSM2 tokens, recorded as `hsmvault fleet init --evidence-out` records it.</summary>
public sealed class Ceremony
{
    private Ceremony(IReadOnlyList<TokenOptions> members, DeploymentEvidence evidence, string daemonBuild)
    {
        Members = members;
        Evidence = evidence;
        DaemonBuild = daemonBuild;
    }

    /// <summary>The members' tokens, by index.</summary>
    public IReadOnlyList<TokenOptions> Members { get; }

    /// <summary>The evidence recorded.</summary>
    public DeploymentEvidence Evidence { get; }

    /// <summary>A folder standing for the published daemon.</summary>
    public string DaemonBuild { get; }

    /// <summary>Generates on member 0, copies to the others, locks, and records it all.</summary>
    public static Ceremony Run(int members, string fleet = "fleet-a", ulong epoch = 1)
    {
        var tokens = Enumerable.Range(0, members).Select(_ => SoftHsmEnvironment.Shared.CreateToken()).ToList();
        tokens.ForEach(t => TokenProvisioner.ProvisionMemberIdentityKey(t));
        var recorder = new CeremonyRecorder(fleet, epoch, tokens);
        var generated = TokenProvisioner.ProvisionFleetKeys(tokens[0], new FleetKeyGenerationOptions { ExtractableForCeremony = members > 1 });
        recorder.Generated(0, generated.Created);
        for (var i = 1; i < members; i++)
        {
            recorder.Copied(0, i, FleetCeremony.CopyFleetKeys(tokens[0], tokens[i]));
        }

        if (members > 1)
        {
            recorder.Locked(0, FleetCeremony.LockFleetKeys(tokens[0]));
        }

        var build = FakeDaemonBuild();
        return new Ceremony(tokens, recorder.Finish(DaemonBuildHash.Compute(build), DateTimeOffset.UtcNow), build);
    }

    /// <summary>The evidence with <paramref name="change"/> applied to its body, signed again by every member's real identity key.</summary>
    public DeploymentEvidence Resigned(Func<EvidenceBody, EvidenceBody> change) => SignAll(Members, change(Evidence.Body));

    /// <summary>Every member's signature of <paramref name="body"/>.</summary>
    public static DeploymentEvidence SignAll(IReadOnlyList<TokenOptions> members, EvidenceBody body)
    {
        var signed = DeploymentEvidence.SignedBody(body);
        return new DeploymentEvidence(body, [.. members.Select((m, i) =>
        {
            var signature = DeploymentInspection.SignAsMember(m, signed);
            return new MemberSignature(i, new TaggedSignature(signature.Key.Algorithm, signature.Signature));
        })]);
    }

    /// <summary>A folder of a few files, as a published daemon is.</summary>
    public static string FakeDaemonBuild()
    {
        var directory = Directory.CreateTempSubdirectory("hsmvault-daemon-build-").FullName;
        File.WriteAllText(Path.Combine(directory, "hsmvaultd.dll"), "not really a daemon");
        Directory.CreateDirectory(Path.Combine(directory, "runtimes"));
        File.WriteAllText(Path.Combine(directory, "runtimes", "libsodium.so"), "nor a library");
        return directory;
    }
}
