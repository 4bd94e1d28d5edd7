using System.Security.Cryptography;
using System.Text;
using HsmVault.Hsm;
using HsmVault.Testing;

namespace HsmVault.Evidence.Tests;

/// <summary>Evidence of real ceremonies between SoftHSM2 tokens, verified, and refused when anything in it is wrong.</summary>
public sealed class DeploymentVerifierTests
{
    private static readonly Lazy<Ceremony> ThreeMembers = new(() => Ceremony.Run(3));

    static DeploymentVerifierTests() => _ = SoftHsmEnvironment.Shared;

    private static Task<VerificationReport> VerifyAsync(byte[] file, string? daemonBuild = null) =>
        DeploymentVerifier.VerifyAsync(file, "evidence.json", new DeploymentVerifierOptions { DaemonBuildDirectory = daemonBuild });

    private static VerificationCheck CheckNamed(VerificationReport report, string startOfWhat) =>
        Assert.Single(report.Checks, c => c.What.StartsWith(startOfWhat, StringComparison.Ordinal));

    [Fact]
    public async Task RealCeremony_ThreeMembers_EveryCheckPasses()
    {
        var ceremony = ThreeMembers.Value;
        var file = ceremony.Evidence.Encode();

        var report = await VerifyAsync(file, ceremony.DaemonBuild);

        var text = new StringWriter();
        report.Write(text);
        Assert.True(report.Passed, text.ToString());
        Assert.Equal(8, report.Checks.Count);
        Assert.Equal(SHA256.HashData(file), ceremony.Evidence.Digest());
        Assert.Contains("RESULT: PASS", text.ToString(), StringComparison.Ordinal);
        var body = ceremony.Evidence.Body;
        Assert.Equal([CeremonyAction.Generate, CeremonyAction.Wrap, CeremonyAction.Unwrap, CeremonyAction.Wrap, CeremonyAction.Unwrap, CeremonyAction.Lock],
            body.Transcript.Select(s => s.Step.Action));
        Assert.Equal("SoftHSM project", body.Members[0].Token.Manufacturer);
        Assert.NotEmpty(body.Members[0].Token.Firmware);
        // Generated on member 0, unwrapped on the others: the attributes PKCS#11 gives each.
        var origin = body.Members[0].Keys.Single(k => k.Role == VaultKeyRole.OprfSeed).Attributes;
        var copy = body.Members[2].Keys.Single(k => k.Role == VaultKeyRole.OprfSeed).Attributes;
        Assert.Equal(new TokenKeyAttributes(true, false, true, true, false), origin);
        Assert.Equal(new TokenKeyAttributes(false, false, false, true, false), copy);
    }

    [Fact]
    public async Task FleetOfOne_NeverExtractableKeys_Passes()
    {
        var ceremony = Ceremony.Run(1);

        var report = await VerifyAsync(ceremony.Evidence.Encode());

        Assert.True(report.Passed, string.Join("\n", report.Failures.SelectMany(f => f.Details)));
        Assert.All(ceremony.Evidence.Body.Members[0].Keys, k => Assert.True(k.Attributes.NeverExtractable));
    }

    [Fact]
    public async Task TamperedByte_InACheckValue_RefusedByEveryMembersSignature()
    {
        var file = ThreeMembers.Value.Evidence.Encode();
        var text = Encoding.UTF8.GetString(file);
        var at = text.IndexOf("\"check_value\":\"", StringComparison.Ordinal) + "\"check_value\":\"".Length;
        file[at] = (byte)(file[at] == (byte)'0' ? '1' : '0');

        var report = await VerifyAsync(file);

        Assert.False(report.Passed);
        var signatures = CheckNamed(report, "Every member's token signed");
        Assert.False(signatures.Passed);
        Assert.Equal(3, signatures.Details.Count);
        Assert.All(signatures.Details, d => Assert.Contains("the document was changed after it was signed", d, StringComparison.Ordinal));
    }

    [Fact]
    public async Task TamperedByte_Whitespace_RefusedAsNotCanonical()
    {
        var file = ThreeMembers.Value.Evidence.Encode();
        var spaced = Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(file).Replace("{\"body\":", "{ \"body\":", StringComparison.Ordinal));

        var report = await VerifyAsync(spaced);

        var check = Assert.Single(report.Checks);
        Assert.False(check.Passed);
        Assert.Contains("not in canonical form", check.Details[0], StringComparison.Ordinal);
        Assert.Contains("at byte 1", check.Details[0], StringComparison.Ordinal);
    }

    [Fact]
    public async Task TamperedByte_NotJson_RefusedNamingIt()
    {
        var file = ThreeMembers.Value.Evidence.Encode();
        file[^1] = (byte)'x';

        var report = await VerifyAsync(file);

        Assert.StartsWith("not JSON", Assert.Single(report.Checks).Details[0], StringComparison.Ordinal);
    }

    [Fact]
    public async Task ExtractableAttribute_ResignedWithRealKeys_RefusedByTheAttributeCheck()
    {
        var ceremony = ThreeMembers.Value;
        var evidence = ceremony.Resigned(body => body with
        {
            Members = [.. body.Members.Select(m => m.Index != 1 ? m : m with
            {
                Keys = [.. m.Keys.Select(k => k.Role != VaultKeyRole.RecordKey ? k : k with { Attributes = k.Attributes with { Extractable = true } })],
            })],
        });

        var report = await VerifyAsync(evidence.Encode());

        Assert.True(CheckNamed(report, "Every member's token signed").Passed);
        var attributes = CheckNamed(report, "Every key is sensitive and not extractable");
        Assert.False(attributes.Passed);
        var failure = Assert.Single(attributes.Details);
        Assert.Contains("member 1", failure, StringComparison.Ordinal);
        Assert.Contains("hsmvault-record-key", failure, StringComparison.Ordinal);
        Assert.Contains("CKA_EXTRACTABLE is true", failure, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ExtractableKeyInARealToken_NeverLocked_Refused()
    {
        // A token whose fleet keys were generated extractable and never locked: the token itself
        // reports CKA_EXTRACTABLE true and CKA_NEVER_EXTRACTABLE false.
        var token = SoftHsmEnvironment.Shared.CreateToken();
        TokenProvisioner.ProvisionMemberIdentityKey(token);
        var recorder = new CeremonyRecorder("fleet-x", 1, [token]);
        recorder.Generated(0, TokenProvisioner.ProvisionFleetKeys(token, new FleetKeyGenerationOptions { ExtractableForCeremony = true }).Created);
        var evidence = recorder.Finish(DaemonBuildHash.Compute(Ceremony.FakeDaemonBuild()), DateTimeOffset.UtcNow);

        var report = await VerifyAsync(evidence.Encode());

        var attributes = CheckNamed(report, "Every key is sensitive and not extractable");
        Assert.False(attributes.Passed);
        Assert.Contains(attributes.Details, d => d.Contains("hsmvault-oprf-seed", StringComparison.Ordinal) && d.Contains("CKA_EXTRACTABLE is true", StringComparison.Ordinal));
        Assert.Contains(attributes.Details, d => d.Contains("hsmvault-oprf-seed", StringComparison.Ordinal) && d.Contains("CKA_NEVER_EXTRACTABLE is false", StringComparison.Ordinal));
        Assert.True(CheckNamed(report, "Every member's token signed").Passed);
    }

    [Fact]
    public async Task UnwrappedKeyWithoutTranscript_Refused()
    {
        var ceremony = ThreeMembers.Value;
        var evidence = ceremony.Resigned(body => body with { Transcript = [.. body.Transcript.Where(s => s.Step.Sequence is not (4 or 5))] });

        var report = await VerifyAsync(evidence.Encode());

        Assert.False(report.Passed);
        Assert.Contains(CheckNamed(report, "Every key is sensitive").Details,
            d => d.Contains("member 2", StringComparison.Ordinal) && d.Contains("no verified unwrap step", StringComparison.Ordinal));
    }

    [Fact]
    public async Task TranscriptStepWithAnotherStepsSignature_Refused()
    {
        var ceremony = ThreeMembers.Value;
        var evidence = ceremony.Resigned(body => body with
        {
            Transcript = [.. body.Transcript.Select(s => s.Step.Sequence == 3 ? s with { Signature = body.Transcript[4].Signature } : s)],
        });

        var report = await VerifyAsync(evidence.Encode());

        Assert.True(CheckNamed(report, "Every member's token signed").Passed);
        var steps = CheckNamed(report, "Every ceremony step is signed");
        Assert.Contains("step 3 (unwrap on member 1): the signature does not verify", Assert.Single(steps.Details), StringComparison.Ordinal);
        Assert.False(CheckNamed(report, "The transcript shows the chain").Passed);
        Assert.Contains(CheckNamed(report, "Every key is sensitive").Details, d => d.Contains("member 1", StringComparison.Ordinal));
    }

    [Fact]
    public async Task DaemonBuild_OtherFolder_Refused()
    {
        var other = Ceremony.FakeDaemonBuild();
        File.WriteAllText(Path.Combine(other, "extra.dll"), "a file the published build does not have");

        var report = await VerifyAsync(ThreeMembers.Value.Evidence.Encode(), other);

        var build = CheckNamed(report, "The daemon build");
        Assert.False(build.Passed);
        Assert.Contains("hashes to", build.Details[0], StringComparison.Ordinal);
    }

    [Fact]
    public void DaemonBuildHash_IsWhatCoreutilsPrint()
    {
        var directory = Ceremony.FakeDaemonBuild();
        var lines = string.Concat(new[] { "hsmvaultd.dll", "runtimes/libsodium.so" }
            .Select(p => $"{Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(Path.Combine(directory, p))))}  {p}\n"));

        var build = DaemonBuildHash.Compute(directory);

        Assert.Equal(SHA256.HashData(Encoding.ASCII.GetBytes(lines)), build.Sha256);
        Assert.Equal(2UL, build.Files);
    }
}
