using System.Security.Cryptography;
using System.Text;
using HsmVault.Crypto.Signatures;
using HsmVault.Hsm.Internal;
using Net.Pkcs11Interop.Common;
using static HsmVault.Hsm.Tests.TokenTestSupport;

namespace HsmVault.Hsm.Tests;

public class CryptoOperationTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(64)]
    [InlineData(100_000)]
    public void Seal_ThenUnseal_ReturnsThePlaintext(int length)
    {
        using var token = Env.OpenProvisionedToken();
        var plaintext = RandomNumberGenerator.GetBytes(length);
        var ad = "record:alice:v1"u8.ToArray();

        var blob = token.Seal(plaintext, ad);

        Assert.Equal(12 + length + 16, blob.Length);
        Assert.Equal(plaintext, token.Unseal(blob, ad));
    }

    [Fact]
    public void Seal_SamePlaintextTwice_UsesFreshIvs()
    {
        using var token = Env.OpenProvisionedToken();
        var plaintext = "the same backup key"u8.ToArray();

        var first = token.Seal(plaintext, []);
        var second = token.Seal(plaintext, []);

        Assert.NotEqual(first[..12], second[..12]);
        Assert.NotEqual(first[12..], second[12..]);
    }

    [Theory]
    [InlineData(0)]   // IV
    [InlineData(12)]  // ciphertext
    [InlineData(-1)]  // tag
    public void Unseal_TamperedBlob_ThrowsIntegrityException(int position)
    {
        using var token = Env.OpenProvisionedToken();
        var blob = token.Seal("secret"u8, "ad"u8);
        blob[position < 0 ? blob.Length + position : position] ^= 0x01;

        Assert.Throws<SealedDataIntegrityException>(() => token.Unseal(blob, "ad"u8));
    }

    [Fact]
    public void Unseal_WrongAssociatedData_ThrowsIntegrityException()
    {
        using var token = Env.OpenProvisionedToken();
        var blob = token.Seal("secret"u8, "record:alice:v1"u8);

        Assert.Throws<SealedDataIntegrityException>(() => token.Unseal(blob, "record:alice:v2"u8));
    }

    [Fact]
    public void Unseal_AfterIntegrityFailure_TokenStillWorks()
    {
        using var token = Env.OpenProvisionedToken();
        var blob = token.Seal("secret"u8, "ad"u8);
        Assert.Throws<SealedDataIntegrityException>(() => token.Unseal(blob, "other"u8));

        Assert.Equal("secret"u8.ToArray(), token.Unseal(blob, "ad"u8));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(27)]
    public void Unseal_TooShort_ThrowsIntegrityException(int length)
    {
        using var token = Env.OpenProvisionedToken();

        var ex = Assert.Throws<SealedDataIntegrityException>(() => token.Unseal(new byte[length], []));

        Assert.Contains($"{length} bytes", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Unseal_BlobFromAnotherToken_ThrowsIntegrityException()
    {
        using var a = Env.OpenProvisionedToken();
        using var b = Env.OpenProvisionedToken();

        Assert.Throws<SealedDataIntegrityException>(() => b.Unseal(a.Seal("secret"u8, []), []));
    }

    [Fact]
    public void ExpandOprfSeed_ImportedSeed_EqualsHkdfExpandFirstBlock()
    {
        var options = Env.CreateToken();
        var seed = RandomNumberGenerator.GetBytes(64);
        TokenProvisioner.ImportOprfSeed(options, seed);
        TokenProvisioner.ProvisionFleetKeys(options, new FleetKeyGenerationOptions { KeepExisting = true });
        using var token = Pkcs11VaultToken.Open(options);
        var info = Encoding.ASCII.GetBytes("alice@example.com" + "OprfKey");
        var output = new byte[32];

        token.ExpandOprfSeed(info, output);

        Assert.Equal(HMACSHA512.HashData(seed, (byte[])[.. info, 0x01])[..32], output);
        Assert.Equal(HKDF.Expand(HashAlgorithmName.SHA512, seed, 32, info), output);
    }

    [Fact]
    public void ExpandOprfSeed_WrongDestinationLength_Throws()
    {
        using var token = Env.OpenProvisionedToken();

        Assert.Throws<ArgumentException>(() => token.ExpandOprfSeed("x"u8, new byte[64]));
    }

    [Fact]
    public void ImportOprfSeed_WhenSeedExists_Refused()
    {
        var options = Env.CreateProvisionedToken();

        var ex = Assert.Throws<TokenConfigurationException>(() => TokenProvisioner.ImportOprfSeed(options, new byte[64]));

        Assert.Contains("already has key 'hsmvault-oprf-seed'", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Sign_Ed25519_VerifiesWithLibsodium()
    {
        using var token = Env.OpenProvisionedToken();
        var message = "validation bundle, epoch 7"u8.ToArray();

        var signature = token.Sign(message);

        Assert.Equal(SignatureAlgorithm.Ed25519, token.SigningKey.Algorithm);
        Assert.Equal(64, signature.Length);
        Assert.True(Sodium.VerifyEd25519(signature, message, token.SigningKey.PublicKey));
        Assert.False(Sodium.VerifyEd25519(signature, "validation bundle, epoch 8"u8, token.SigningKey.PublicKey));
        Assert.Equal(signature, token.Sign(message)); // Ed25519 is deterministic (RFC 8032).
    }

    [Fact]
    public void Sign_EcdsaP256_VerifiesWithDotnet()
    {
        var options = Env.CreateProvisionedToken(generation: new FleetKeyGenerationOptions { SignatureAlgorithm = SignatureAlgorithm.EcdsaP256Sha256 });
        using var token = Pkcs11VaultToken.Open(options);
        var message = "validation bundle, epoch 7"u8.ToArray();

        var signature = token.Sign(message);

        Assert.Equal(SignatureAlgorithm.EcdsaP256Sha256, token.SigningKey.Algorithm);
        Assert.Equal(65, token.SigningKey.PublicKey.Length);
        Assert.Equal(0x04, token.SigningKey.PublicKey[0]);
        using var ecdsa = ECDsa.Create(new ECParameters
        {
            Curve = ECCurve.NamedCurves.nistP256,
            Q = new ECPoint { X = token.SigningKey.PublicKey[1..33], Y = token.SigningKey.PublicKey[33..] },
        });
        Assert.Equal(64, signature.Length);
        Assert.True(ecdsa.VerifyData(message, signature, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation));
        Assert.False(ecdsa.VerifyData("validation bundle, epoch 8"u8, signature, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation));
    }

    [Fact]
    public void ProvisionFleetKeys_Twice_Refused()
    {
        var options = Env.CreateProvisionedToken();

        var ex = Assert.Throws<TokenConfigurationException>(() => TokenProvisioner.ProvisionFleetKeys(options));

        Assert.Contains($"token '{options.TokenLabel}' already has fleet keys 'hsmvault-oprf-seed', 'hsmvault-record-key', 'hsmvault-signing-key'", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ProvisionFleetKeys_KeepExisting_KeepsTheKeys()
    {
        var options = Env.CreateProvisionedToken();
        byte[] signingKey;
        using (var token = Pkcs11VaultToken.Open(options))
        {
            signingKey = token.SigningKey.PublicKey;
        }

        var result = TokenProvisioner.ProvisionFleetKeys(options, new FleetKeyGenerationOptions { KeepExisting = true });

        Assert.Empty(result.Created);
        Assert.Equal(3, result.Kept.Count);
        Assert.Equal(signingKey, result.SigningKey.PublicKey);
    }

    [Fact]
    public void ProvisionFleetKeys_WithAnotherPrefix_CreatesASeparateKeySet()
    {
        var options = Env.CreateProvisionedToken();
        options.KeyLabelPrefix = "witness";

        var result = TokenProvisioner.ProvisionFleetKeys(options);
        using var token = Pkcs11VaultToken.Open(options);

        Assert.Equal(["witness-oprf-seed", "witness-record-key", "witness-signing-key"], result.Created);
        Assert.Equal(result.SigningKey.PublicKey, token.SigningKey.PublicKey);
    }

    [Theory]
    [InlineData("hsmvault-oprf-seed", CKO.CKO_SECRET_KEY)]
    [InlineData("hsmvault-record-key", CKO.CKO_SECRET_KEY)]
    [InlineData("hsmvault-signing-key", CKO.CKO_PRIVATE_KEY)]
    public void FleetSecrets_ArePrivateSensitiveAndNeverExtractable(string label, CKO objectClass)
    {
        var options = Env.CreateProvisionedToken();

        var attributes = Attributes(options, objectClass, label,
            CKA.CKA_TOKEN, CKA.CKA_PRIVATE, CKA.CKA_SENSITIVE, CKA.CKA_EXTRACTABLE,
            CKA.CKA_LOCAL, CKA.CKA_ALWAYS_SENSITIVE, CKA.CKA_NEVER_EXTRACTABLE);

        Assert.True(attributes[CKA.CKA_TOKEN]);
        Assert.True(attributes[CKA.CKA_PRIVATE]);
        Assert.True(attributes[CKA.CKA_SENSITIVE]);
        Assert.False(attributes[CKA.CKA_EXTRACTABLE]);
        Assert.True(attributes[CKA.CKA_LOCAL]);
        Assert.True(attributes[CKA.CKA_ALWAYS_SENSITIVE]);
        Assert.True(attributes[CKA.CKA_NEVER_EXTRACTABLE]);
    }

    [Fact]
    public void OprfSeed_CanOnlySign()
    {
        var options = Env.CreateProvisionedToken();

        var attributes = Attributes(options, CKO.CKO_SECRET_KEY, "hsmvault-oprf-seed",
            CKA.CKA_SIGN, CKA.CKA_VERIFY, CKA.CKA_ENCRYPT, CKA.CKA_DECRYPT, CKA.CKA_WRAP, CKA.CKA_UNWRAP, CKA.CKA_DERIVE);

        Assert.True(attributes[CKA.CKA_SIGN]);
        Assert.All([CKA.CKA_VERIFY, CKA.CKA_ENCRYPT, CKA.CKA_DECRYPT, CKA.CKA_WRAP, CKA.CKA_UNWRAP, CKA.CKA_DERIVE],
            type => Assert.False(attributes[type]));
    }

    [Fact]
    public void RecordKey_CanOnlyEncryptAndDecrypt()
    {
        var options = Env.CreateProvisionedToken();

        var attributes = Attributes(options, CKO.CKO_SECRET_KEY, "hsmvault-record-key",
            CKA.CKA_ENCRYPT, CKA.CKA_DECRYPT, CKA.CKA_SIGN, CKA.CKA_WRAP, CKA.CKA_UNWRAP, CKA.CKA_DERIVE);

        Assert.True(attributes[CKA.CKA_ENCRYPT]);
        Assert.True(attributes[CKA.CKA_DECRYPT]);
        Assert.All([CKA.CKA_SIGN, CKA.CKA_WRAP, CKA.CKA_UNWRAP, CKA.CKA_DERIVE], type => Assert.False(attributes[type]));
    }

    [Fact]
    public void ImportedOprfSeed_IsPrivateSensitiveNotExtractableButNotLocal()
    {
        var options = Env.CreateToken();
        TokenProvisioner.ImportOprfSeed(options, new byte[64]);

        var attributes = Attributes(options, CKO.CKO_SECRET_KEY, "hsmvault-oprf-seed",
            CKA.CKA_PRIVATE, CKA.CKA_SENSITIVE, CKA.CKA_EXTRACTABLE, CKA.CKA_LOCAL);

        Assert.True(attributes[CKA.CKA_PRIVATE]);
        Assert.True(attributes[CKA.CKA_SENSITIVE]);
        Assert.False(attributes[CKA.CKA_EXTRACTABLE]);
        Assert.False(attributes[CKA.CKA_LOCAL]);
    }

    [Fact]
    public void SecretValues_CannotBeRead()
    {
        var options = Env.CreateProvisionedToken();
        using var admin = AdminSession.Open(options);
        var seed = admin.Session.FindSingle(CKO.CKO_SECRET_KEY, "hsmvault-oprf-seed", admin.TokenLabel)!;

        var value = admin.Session.GetAttributeValue(seed, [CKA.CKA_VALUE]);

        Assert.True(value[0].CannotBeRead);
    }
}
