using System.Security.Cryptography;
using HsmVault.Crypto.Signatures;
using HsmVault.Hsm.Internal;
using Net.Pkcs11Interop.Common;
using static HsmVault.Hsm.Tests.TokenTestSupport;

namespace HsmVault.Hsm.Tests;

public class FleetCeremonyTests
{
    private static readonly FleetKeyGenerationOptions Extractable = new() { ExtractableForCeremony = true };

    [Theory]
    [InlineData(null)]
    [InlineData(SignatureAlgorithm.EcdsaP256Sha256)]
    public void CopyFleetKeys_TargetComputesTheSameResults(SignatureAlgorithm? algorithm)
    {
        var source = Env.CreateProvisionedToken(generation: new FleetKeyGenerationOptions { ExtractableForCeremony = true, SignatureAlgorithm = algorithm });
        var target = Env.CreateToken();

        var transcript = FleetCeremony.CopyFleetKeys(source, target);

        Assert.Equal(["hsmvault-oprf-seed", "hsmvault-record-key", "hsmvault-signing-key"], transcript.CopiedKeys);
        Assert.Equal(65, transcript.SourceEphemeralPublicKey.Length);
        Assert.NotEqual(transcript.SourceEphemeralPublicKey, transcript.TargetEphemeralPublicKey);
        using var a = Pkcs11VaultToken.Open(source);
        using var b = Pkcs11VaultToken.Open(target);
        Assert.Equal(a.SigningKey.Algorithm, b.SigningKey.Algorithm);
        Assert.Equal(a.SigningKey.PublicKey, b.SigningKey.PublicKey);

        var blob = a.Seal("backup key"u8, "record:alice"u8);
        Assert.Equal("backup key"u8.ToArray(), b.Unseal(blob, "record:alice"u8));
        Assert.Equal("other way"u8.ToArray(), a.Unseal(b.Seal("other way"u8, []), []));

        var fromA = new byte[32];
        var fromB = new byte[32];
        a.ExpandOprfSeed("aliceOprfKey"u8, fromA);
        b.ExpandOprfSeed("aliceOprfKey"u8, fromB);
        Assert.Equal(fromA, fromB);

        var message = "bundle epoch 1"u8.ToArray();
        Assert.True(Verify(a.SigningKey, message, b.Sign(message)));
    }

    [Theory]
    [InlineData("hsmvault-oprf-seed", CKO.CKO_SECRET_KEY)]
    [InlineData("hsmvault-record-key", CKO.CKO_SECRET_KEY)]
    [InlineData("hsmvault-signing-key", CKO.CKO_PRIVATE_KEY)]
    public void CopyFleetKeys_TargetKeysArePrivateSensitiveNotExtractable(string label, CKO objectClass)
    {
        var source = Env.CreateProvisionedToken(generation: Extractable);
        var target = Env.CreateToken();

        FleetCeremony.CopyFleetKeys(source, target);
        var attributes = Attributes(target, objectClass, label,
            CKA.CKA_TOKEN, CKA.CKA_PRIVATE, CKA.CKA_SENSITIVE, CKA.CKA_EXTRACTABLE, CKA.CKA_LOCAL);

        Assert.True(attributes[CKA.CKA_TOKEN]);
        Assert.True(attributes[CKA.CKA_PRIVATE]);
        Assert.True(attributes[CKA.CKA_SENSITIVE]);
        Assert.False(attributes[CKA.CKA_EXTRACTABLE]);
        Assert.False(attributes[CKA.CKA_LOCAL]); // Unwrapped, not generated: evidence shows the chain.
    }

    [Fact]
    public void CopyFleetKeys_ToSeveralTargets_ThenLock()
    {
        var source = Env.CreateProvisionedToken(generation: Extractable);
        var second = Env.CreateToken();
        var third = Env.CreateToken();

        FleetCeremony.CopyFleetKeys(source, second);
        FleetCeremony.CopyFleetKeys(source, third);
        var locked = FleetCeremony.LockFleetKeys(source);

        Assert.Equal(["hsmvault-oprf-seed", "hsmvault-record-key", "hsmvault-signing-key"], locked);
        Assert.False(Attributes(source, CKO.CKO_SECRET_KEY, "hsmvault-oprf-seed", CKA.CKA_EXTRACTABLE)[CKA.CKA_EXTRACTABLE]);
        Assert.Empty(FleetCeremony.LockFleetKeys(source));
        using var a = Pkcs11VaultToken.Open(source);
        using var c = Pkcs11VaultToken.Open(third);
        Assert.Equal("x"u8.ToArray(), c.Unseal(a.Seal("x"u8, []), []));
    }

    [Fact]
    public void CopyFleetKeys_FromLockedSource_Refused()
    {
        var source = Env.CreateProvisionedToken(generation: Extractable);
        FleetCeremony.LockFleetKeys(source);

        var ex = Assert.Throws<TokenConfigurationException>(() => FleetCeremony.CopyFleetKeys(source, Env.CreateToken()));

        Assert.Contains("is not extractable", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CopyFleetKeys_FromDefaultProvisionedToken_Refused()
    {
        var source = Env.CreateProvisionedToken();

        var ex = Assert.Throws<TokenConfigurationException>(() => FleetCeremony.CopyFleetKeys(source, Env.CreateToken()));

        Assert.Contains("key 'hsmvault-oprf-seed' is not extractable", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CopyFleetKeys_TargetAlreadyProvisioned_Refused()
    {
        var source = Env.CreateProvisionedToken(generation: Extractable);
        var target = Env.CreateProvisionedToken();

        var ex = Assert.Throws<TokenConfigurationException>(() => FleetCeremony.CopyFleetKeys(source, target));

        Assert.Contains($"target token '{target.TokenLabel}' already has fleet keys", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CopyFleetKeys_LeavesNoEphemeralObjects()
    {
        var source = Env.CreateProvisionedToken(generation: Extractable);
        var target = Env.CreateToken();

        FleetCeremony.CopyFleetKeys(source, target);

        using var admin = AdminSession.Open(target);
        Assert.Equal(6, admin.Session.FindAllObjects([]).Count); // Seed, record key, signing key pair, its own identity key pair: nothing else.
    }

    [Fact]
    public void ProvisionExtractable_OnSoftHsm_SigningKeyIsP256BecauseEd25519CannotBeWrapped()
    {
        // Measured on SoftHSM2 2.6.1: C_WrapKey answers CKR_KEY_NOT_WRAPPABLE for Ed25519 keys.
        var result = TokenProvisioner.ProvisionFleetKeys(Env.CreateToken(), Extractable);

        Assert.Equal(SignatureAlgorithm.EcdsaP256Sha256, result.SigningKey.Algorithm);
    }

    [Fact]
    public void ProvisionExtractable_Ed25519Requested_OnSoftHsm_RefusedWithReason()
    {
        var options = Env.CreateToken();

        var ex = Assert.Throws<TokenConfigurationException>(() => TokenProvisioner.ProvisionFleetKeys(
            options, new FleetKeyGenerationOptions { ExtractableForCeremony = true, SignatureAlgorithm = SignatureAlgorithm.Ed25519 }));

        Assert.Contains("cannot wrap Ed25519 private keys", ex.Message, StringComparison.Ordinal);
        using var admin = AdminSession.Open(options);
        Assert.Empty(admin.Session.FindByLabel(CKO.CKO_PRIVATE_KEY, "hsmvault-signing-key"));
    }

    private static bool Verify(SigningKeyDescription key, byte[] message, byte[] signature)
    {
        if (key.Algorithm == SignatureAlgorithm.Ed25519)
        {
            return Sodium.VerifyEd25519(signature, message, key.PublicKey);
        }

        using var ecdsa = ECDsa.Create(new ECParameters
        {
            Curve = ECCurve.NamedCurves.nistP256,
            Q = new ECPoint { X = key.PublicKey[1..33], Y = key.PublicKey[33..] },
        });
        return ecdsa.VerifyData(message, signature, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
    }
}
