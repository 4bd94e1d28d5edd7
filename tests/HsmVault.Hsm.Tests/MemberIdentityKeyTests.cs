using HsmVault.Crypto.Signatures;
using HsmVault.Hsm.Internal;
using Net.Pkcs11Interop.Common;
using static HsmVault.Hsm.Tests.TokenTestSupport;

namespace HsmVault.Hsm.Tests;

public class MemberIdentityKeyTests
{
    private const string IdentityKey = "hsmvault-member-identity-key";

    [Fact]
    public void ProvisionFleetKeys_GeneratesAnIdentityKeyThatNeverLeavesTheToken()
    {
        var options = Env.CreateProvisionedToken();

        var attributes = Attributes(options, CKO.CKO_PRIVATE_KEY, IdentityKey,
            CKA.CKA_PRIVATE, CKA.CKA_SENSITIVE, CKA.CKA_EXTRACTABLE, CKA.CKA_LOCAL, CKA.CKA_NEVER_EXTRACTABLE, CKA.CKA_ALWAYS_SENSITIVE);

        Assert.True(attributes[CKA.CKA_PRIVATE]);
        Assert.True(attributes[CKA.CKA_SENSITIVE]);
        Assert.False(attributes[CKA.CKA_EXTRACTABLE]);
        Assert.True(attributes[CKA.CKA_LOCAL]);
        Assert.True(attributes[CKA.CKA_NEVER_EXTRACTABLE]);
        Assert.True(attributes[CKA.CKA_ALWAYS_SENSITIVE]);
    }

    [Fact]
    public void SignAsMember_VerifiesUnderTheIdentityKeyOnly()
    {
        using var token = Env.OpenProvisionedToken();
        var message = "command at index 7"u8.ToArray();

        var signature = token.SignAsMember(message);

        Assert.True(token.MemberIdentityKey.Verifies(message, signature));
        Assert.False(token.SigningKey.Verifies(message, signature));
        Assert.False(token.MemberIdentityKey.Verifies("command at index 8"u8, signature));
        signature[5] ^= 1;
        Assert.False(token.MemberIdentityKey.Verifies(message, signature));
    }

    [Fact]
    public void CopyFleetKeys_GivesTheTargetItsOwnIdentityKey()
    {
        var source = Env.CreateProvisionedToken(generation: new FleetKeyGenerationOptions { ExtractableForCeremony = true });
        var target = Env.CreateToken();

        FleetCeremony.CopyFleetKeys(source, target);
        using var a = Pkcs11VaultToken.Open(source);
        using var b = Pkcs11VaultToken.Open(target);

        Assert.Equal(a.SigningKey, b.SigningKey);
        Assert.NotEqual(a.MemberIdentityKey, b.MemberIdentityKey);
        var message = "decided by b"u8.ToArray();
        Assert.False(a.MemberIdentityKey.Verifies(message, b.SignAsMember(message)));
        Assert.True(Attributes(target, CKO.CKO_PRIVATE_KEY, IdentityKey, CKA.CKA_LOCAL)[CKA.CKA_LOCAL]);
    }

    [Fact]
    public void ProvisionMemberIdentityKey_IsIdempotent()
    {
        var options = Env.CreateProvisionedToken();
        using var token = Pkcs11VaultToken.Open(options);

        var again = TokenProvisioner.ProvisionMemberIdentityKey(options);

        Assert.Equal(token.MemberIdentityKey, again);
    }

    [Fact]
    public void Open_WithoutIdentityKey_SaysHowToProvision()
    {
        var options = Env.CreateProvisionedToken();
        using (var admin = AdminSession.Open(options))
        {
            foreach (var objectClass in new[] { CKO.CKO_PRIVATE_KEY, CKO.CKO_PUBLIC_KEY })
            {
                var label = objectClass == CKO.CKO_PRIVATE_KEY ? IdentityKey : IdentityKey + "-pub";
                admin.Session.DestroyObject(admin.Session.FindSingle(objectClass, label, admin.TokenLabel)!);
            }
        }

        var ex = Assert.Throws<TokenConfigurationException>(() => Pkcs11VaultToken.Open(options));

        Assert.True(ex.FleetKeysMissing);
        Assert.Contains(IdentityKey, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Verifies_RefusesMalformedKeysAndSignatures()
    {
        var p256 = new SigningKeyDescription(SignatureAlgorithm.EcdsaP256Sha256, new byte[65]);
        var ed25519 = new SigningKeyDescription(SignatureAlgorithm.Ed25519, new byte[31]);

        Assert.False(p256.Verifies("m"u8, new byte[64]));
        Assert.False(ed25519.Verifies("m"u8, new byte[64]));
        Assert.False(new SigningKeyDescription((SignatureAlgorithm)9, new byte[32]).Verifies("m"u8, new byte[64]));
    }
}
