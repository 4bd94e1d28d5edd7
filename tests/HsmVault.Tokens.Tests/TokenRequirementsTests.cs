using HsmVault.Hsm;
using HsmVault.Testing;
using Net.Pkcs11Interop.Common;

namespace HsmVault.Tokens.Tests;

/// <summary>The one list of what a member's token needs, on real tokens and on mechanism lists of tokens not installed here.</summary>
public sealed class TokenRequirementsTests
{
    /// <summary>
    /// What tpm2-pkcs11 over swtpm lists (DESIGN.md: no AES-GCM, no wrap, no ECDH): RSA, ECDSA,
    /// AES-CBC/CFB, SHA-256 HMAC and key generation.
    /// </summary>
    private static readonly ulong[] Tpm2Pkcs11 =
    [
        .. new[]
        {
            CKM.CKM_RSA_PKCS_KEY_PAIR_GEN, CKM.CKM_RSA_PKCS, CKM.CKM_RSA_PKCS_PSS, CKM.CKM_RSA_PKCS_OAEP, CKM.CKM_SHA256_RSA_PKCS,
            CKM.CKM_EC_KEY_PAIR_GEN, CKM.CKM_ECDSA, CKM.CKM_ECDSA_SHA256, CKM.CKM_AES_KEY_GEN, CKM.CKM_AES_CBC, CKM.CKM_AES_CBC_PAD,
            CKM.CKM_AES_CFB128, CKM.CKM_SHA256_HMAC, CKM.CKM_SHA_1, CKM.CKM_SHA256, CKM.CKM_GENERIC_SECRET_KEY_GEN,
        }.Select(m => (ulong)m),
    ];

    [Fact]
    public void Check_Tpm2Pkcs11MechanismList_CannotServe_InOneLineNamingWhatIsMissing()
    {
        var report = TokenRequirements.Check(Tpm2Pkcs11, new TokenDescription("tpm2-token", "1", "tpm2-software.github.io", "SW   TPM", 1));

        Assert.False(report.CanServeAsMember);
        Assert.False(report.CanJoinCeremony);
        Assert.DoesNotContain('\n', report.Verdict);
        Assert.StartsWith("token 'tpm2-token' (tpm2-software.github.io SW   TPM) cannot serve as a vault member: it lacks", report.Verdict, StringComparison.Ordinal);
        Assert.Contains("CKM_AES_GCM", report.Verdict, StringComparison.Ordinal);
        Assert.Contains("CKM_SHA512_HMAC", report.Verdict, StringComparison.Ordinal);
        Assert.Equal(["CKM_SHA512_HMAC", "CKM_AES_GCM"], report.Missing(TokenRequirementScope.Member));
        Assert.Equal(2, report.Missing(TokenRequirementScope.Ceremony).Count);
        Assert.Contains(report.Missing(TokenRequirementScope.Ceremony), m => m.Contains("CKM_ECDH1_DERIVE", StringComparison.Ordinal));
        Assert.Contains(report.Missing(TokenRequirementScope.Ceremony), m => m.Contains("RFC 5649", StringComparison.Ordinal));
        var lines = report.Lines();
        Assert.Contains(lines, l => l.StartsWith("missing  CKM_AES_GCM:", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("ok       CKM_AES_KEY_GEN:", StringComparison.Ordinal));
        Assert.Equal(report.Verdict, lines[^1]);
    }

    [Fact]
    public void RequireMember_TokenWithoutGcm_ThrowsNamingTheMechanismAndTheToken()
    {
        var report = TokenRequirements.Check(Tpm2Pkcs11, new TokenDescription("tpm2-token", "1", "tpm2-software.github.io", "SW   TPM", 1));

        var ex = Assert.Throws<TokenConfigurationException>(() => TokenRequirements.RequireMember(report));

        Assert.Contains("token 'tpm2-token'", ex.Message, StringComparison.Ordinal);
        Assert.Contains("CKM_AES_GCM (sealing records", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Check_AllButTheCeremony_ServesAFleetOfOneOnly()
    {
        ulong[] mechanisms =
        [
            (ulong)CKM.CKM_SHA512_HMAC, (ulong)CKM.CKM_AES_GCM, (ulong)CKM.CKM_AES_KEY_GEN, (ulong)CKM.CKM_GENERIC_SECRET_KEY_GEN,
            (ulong)CKM.CKM_EC_KEY_PAIR_GEN, (ulong)CKM.CKM_ECDSA,
        ];

        var report = TokenRequirements.Check(mechanisms);

        Assert.True(report.CanServeAsMember);
        Assert.False(report.CanJoinCeremony);
        Assert.Contains("of a fleet of one only", report.Verdict, StringComparison.Ordinal);
    }

    [Fact]
    public void Check_EdDsaWithoutEcdsa_StillMeetsTheSigningRequirement()
    {
        ulong[] mechanisms =
        [
            (ulong)CKM.CKM_SHA512_HMAC, (ulong)CKM.CKM_AES_GCM, (ulong)CKM.CKM_AES_KEY_GEN, (ulong)CKM.CKM_GENERIC_SECRET_KEY_GEN, 0x1055, 0x1057,
        ];

        Assert.True(TokenRequirements.Check(mechanisms).CanServeAsMember);
        Assert.False(TokenRequirements.Check(mechanisms[..^1]).CanServeAsMember);
    }

    [Fact]
    public void Check_RealSoftHsmToken_CanJoinACeremony()
    {
        var report = TokenRequirements.Check(SoftHsmEnvironment.Shared.CreateToken());

        Assert.True(report.CanJoinCeremony, report.Verdict);
        Assert.All(report.Results, r => Assert.True(r.Met, r.Requirement.Name));
    }
}
