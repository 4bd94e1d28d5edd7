using System.Security.Cryptography;
using HsmVault.Hsm;
using HsmVault.Hsm.Internal;
using HsmVault.Testing;

namespace HsmVault.Tokens.Tests;

/// <summary>The key ceremony between a SoftHSM2 token and an NSS softoken token, both ways.</summary>
public sealed class MixedCeremonyTests
{
    [Fact]
    public void CopyFleetKeys_FromNssToSoftHsm_TargetComputesWhatTheSourceComputes()
    {
        var source = NssEnvironment.Shared.CreateToken();
        var target = SoftHsmEnvironment.Shared.CreateToken();
        TokenProvisioner.ProvisionFleetKeys(source, new FleetKeyGenerationOptions { ExtractableForCeremony = true });

        var transcript = FleetCeremony.CopyFleetKeys(source, target);
        FleetCeremony.LockFleetKeys(source);

        Assert.Equal(3, transcript.CopiedKeys.Count);
        using var a = Pkcs11VaultToken.Open(source);
        using var b = Pkcs11VaultToken.Open(target);
        Assert.Equal(a.SigningKey.PublicKey, b.SigningKey.PublicKey);
        Assert.NotEqual(a.MemberIdentityKey.PublicKey, b.MemberIdentityKey.PublicKey);
        Assert.Equal("record"u8.ToArray(), b.Unseal(a.Seal("record"u8, "ad"u8), "ad"u8));
        Assert.Equal("record"u8.ToArray(), a.Unseal(b.Seal("record"u8, "ad"u8), "ad"u8));
        var info = RandomNumberGenerator.GetBytes(40);
        var (fromA, fromB) = (new byte[32], new byte[32]);
        a.ExpandOprfSeed(info, fromA);
        b.ExpandOprfSeed(info, fromB);
        Assert.Equal(fromA, fromB);
        Assert.True(NssTokenTests.VerifyP256(a.SigningKey.PublicKey, info, b.Sign(info)));
    }

    [Fact]
    public void CopyFleetKeys_FromSoftHsmToNss_TargetComputesWhatTheSourceComputes()
    {
        // SoftHSM2's PKCS#8 leaves out the optional public key, which NSS then wants in CKA_NSS_DB
        // (see FleetCeremony): the direction that used to be refused.
        var source = SoftHsmEnvironment.Shared.CreateToken();
        var target = NssEnvironment.Shared.CreateToken();
        TokenProvisioner.ProvisionFleetKeys(source, new FleetKeyGenerationOptions { ExtractableForCeremony = true });

        var transcript = FleetCeremony.CopyFleetKeys(source, target);
        FleetCeremony.LockFleetKeys(source);

        Assert.Equal(3, transcript.CopiedKeys.Count);
        using var a = Pkcs11VaultToken.Open(source);
        using var b = Pkcs11VaultToken.Open(target);
        Assert.Equal(a.SigningKey.PublicKey, b.SigningKey.PublicKey);
        Assert.Equal("record"u8.ToArray(), a.Unseal(b.Seal("record"u8, "ad"u8), "ad"u8));
        var info = RandomNumberGenerator.GetBytes(40);
        var (fromA, fromB) = (new byte[32], new byte[32]);
        a.ExpandOprfSeed(info, fromA);
        b.ExpandOprfSeed(info, fromB);
        Assert.Equal(fromA, fromB);
        Assert.True(NssTokenTests.VerifyP256(a.SigningKey.PublicKey, info, b.Sign(info)));
        Assert.True(NssTokenTests.VerifyP256(b.SigningKey.PublicKey, info, a.Sign(info)));
    }

    [Fact]
    public void Rfc5649Negotiation_PicksKwpOnNssAndWrapPadOnSoftHsm()
    {
        // The same algorithm under two mechanism numbers: what the known-answer test is for.
        using (var nss = AdminSession.Open(NssEnvironment.Shared.CreateToken()))
        {
            Assert.Equal(KeyWrapNegotiation.CkmAesKeyWrapKwp, KeyWrapNegotiation.FindRfc5649(nss, Pkcs11Modules.NativeOf(NssEnvironment.Shared.ModulePath)));
        }

        using var softHsm = AdminSession.Open(SoftHsmEnvironment.Shared.CreateToken());
        Assert.Equal(0x210AUL, KeyWrapNegotiation.FindRfc5649(softHsm, Pkcs11Modules.NativeOf(SoftHsmEnvironment.DefaultModulePath)));
    }

    [Fact]
    public void Rfc5649Wrap_MatchesTheRfcExamples()
    {
        // RFC 5649 §6, both examples (20 and 7 octets under a 192-bit KEK).
        var kek = Convert.FromHexString("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8");
        Assert.Equal(
            "138BDEAA9B8FA7FC61F97742E72248EE5AE6AE5360D1AE6A5F54F373FA543B6A",
            Convert.ToHexString(KeyWrapNegotiation.Rfc5649Wrap(kek, Convert.FromHexString("c37b7e6492584340bed12207808941155068f738"))));
        Assert.Equal(
            "AFBEB0F07DFBF5419200F2CCB50BB24F",
            Convert.ToHexString(KeyWrapNegotiation.Rfc5649Wrap(kek, Convert.FromHexString("466f7250617369"))));
    }
}
