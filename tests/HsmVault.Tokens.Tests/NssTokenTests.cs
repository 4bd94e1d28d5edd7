using System.Security.Cryptography;
using System.Text;
using HsmVault.Crypto.Signatures;
using HsmVault.Hsm;
using HsmVault.Hsm.Internal;
using HsmVault.Testing;
using Net.Pkcs11Interop.Common;

namespace HsmVault.Tokens.Tests;

/// <summary>The token layer over NSS softoken: every operation the vault uses, and NSS's quirks.</summary>
public sealed class NssTokenTests
{
    private static NssEnvironment Nss => NssEnvironment.Shared;

    [Fact]
    public void Open_NssToken_FindsTheCertificateDbTokenAndSignsWithP256()
    {
        using var token = Nss.OpenProvisionedToken();

        Assert.Equal(NssEnvironment.TokenLabel, token.Description.Label);

        // NSS softoken has no EdDSA, so both signing keys fall back to ECDSA P-256.
        Assert.Equal(SignatureAlgorithm.EcdsaP256Sha256, token.SigningKey.Algorithm);
        Assert.Equal(SignatureAlgorithm.EcdsaP256Sha256, token.MemberIdentityKey.Algorithm);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(64)]
    [InlineData(100_000)]
    public void Seal_ThenUnseal_ReturnsThePlaintext(int length)
    {
        using var token = Nss.OpenProvisionedToken();
        var plaintext = RandomNumberGenerator.GetBytes(length);

        // NSS's GCM length query leaves out the tag: a blob of the right length proves the
        // pre-sized buffer took the tag too.
        var blob = token.Seal(plaintext, "record:alice:v1"u8);

        Assert.Equal(12 + length + 16, blob.Length);
        Assert.Equal(plaintext, token.Unseal(blob, "record:alice:v1"u8));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(12)]
    [InlineData(-1)]
    public void Unseal_TamperedBlob_ThrowsIntegrityException(int position)
    {
        using var token = Nss.OpenProvisionedToken();
        var blob = token.Seal("secret"u8, "ad"u8);
        blob[position < 0 ? blob.Length + position : position] ^= 0x01;

        Assert.Throws<SealedDataIntegrityException>(() => token.Unseal(blob, "ad"u8));
        Assert.Equal("secret"u8.ToArray(), token.Unseal(token.Seal("secret"u8, "ad"u8), "ad"u8));
    }

    [Fact]
    public void Unseal_WrongAssociatedData_ThrowsIntegrityException()
    {
        using var token = Nss.OpenProvisionedToken();
        var blob = token.Seal("secret"u8, "record:alice:v1"u8);

        Assert.Throws<SealedDataIntegrityException>(() => token.Unseal(blob, "record:alice:v2"u8));
    }

    [Fact]
    public void Unseal_BlobSealedUnderAnotherRecordKey_ThrowsIntegrityException()
    {
        using var a = Nss.OpenProvisionedToken();
        using var b = Nss.OpenProvisionedToken();

        Assert.Throws<SealedDataIntegrityException>(() => b.Unseal(a.Seal("secret"u8, []), []));
    }

    [Fact]
    public void ExpandOprfSeed_ImportedSeed_EqualsHkdfExpand()
    {
        var options = Nss.CreateToken();
        var seed = RandomNumberGenerator.GetBytes(64);
        TokenProvisioner.ImportOprfSeed(options, seed);
        TokenProvisioner.ProvisionFleetKeys(options, new FleetKeyGenerationOptions { KeepExisting = true });
        using var token = Pkcs11VaultToken.Open(options);
        var info = Encoding.ASCII.GetBytes("alice@example.com" + "OprfKey");
        var output = new byte[32];

        token.ExpandOprfSeed(info, output);

        Assert.Equal(HKDF.Expand(HashAlgorithmName.SHA512, seed, 32, info), output);
    }

    [Fact]
    public void Sign_And_SignAsMember_VerifyUnderTheirPublicKeys_AndDiffer()
    {
        using var token = Nss.OpenProvisionedToken();
        var message = "bundle"u8.ToArray();

        Assert.True(VerifyP256(token.SigningKey.PublicKey, message, token.Sign(message)));
        Assert.True(VerifyP256(token.MemberIdentityKey.PublicKey, message, token.SignAsMember(message)));
        Assert.False(VerifyP256(token.SigningKey.PublicKey, message, token.SignAsMember(message)));
    }

    [Fact]
    public void DataObject_WriteReadOverwrite_KeepsTwoCarriersWithTheLatestValue()
    {
        var options = Nss.CreateProvisionedToken();
        using var token = Pkcs11VaultToken.Open(options);
        Assert.Null(token.ReadDataObject("raft-high-water-mark"));

        // The third write and later rewrite the older carrier in place: NSS softoken lets CKA_ID be modified.
        for (byte i = 1; i <= 5; i++)
        {
            token.WriteDataObject("raft-high-water-mark", [i, i, i]);
        }

        Assert.Equal([5, 5, 5], token.ReadDataObject("raft-high-water-mark"));
        using var reopened = Pkcs11VaultToken.Open(options);
        Assert.Equal([5, 5, 5], reopened.ReadDataObject("raft-high-water-mark"));
        using var admin = AdminSession.Open(options);
        var copies = DataObjects.FindAll(admin.Session, options.KeyLabelPrefix + "-raft-high-water-mark");
        Assert.Equal(2, copies.Count);

        // The value lives in the carrier form, as a private object that is no usable key (NSS refuses private token
        // CKO_DATA anyway).
        Assert.Empty(admin.Session.FindByLabel(CKO.CKO_DATA, options.KeyLabelPrefix + "-raft-high-water-mark"));
        foreach (var carrier in admin.Session.FindByLabel(CKO.CKO_SECRET_KEY, options.KeyLabelPrefix + "-raft-high-water-mark"))
        {
            var flags = admin.Session.GetBools(carrier, CKA.CKA_PRIVATE, CKA.CKA_SIGN, CKA.CKA_ENCRYPT, CKA.CKA_WRAP, CKA.CKA_DERIVE);
            Assert.Equal([true, false, false, false, false], flags.Values.Select(v => v ?? true));
        }
    }

    [Fact]
    public void DataObject_SurvivesReopening()
    {
        var options = Nss.CreateProvisionedToken();
        using (var token = Pkcs11VaultToken.Open(options))
        {
            token.WriteDataObject("ake-private-key", RandomNumberGenerator.GetBytes(60));
            token.WriteDataObject("ake-private-key", [42]);
        }

        using var again = Pkcs11VaultToken.Open(options);
        Assert.Equal([42], again.ReadDataObject("ake-private-key"));
    }

    [Fact]
    public void GeneratedKeys_AreSensitiveAndNeverExtractable_ButNssReportsLocalFalse()
    {
        var options = Nss.CreateProvisionedToken();
        using var admin = AdminSession.Open(options);
        var labels = new FleetKeyLabels(options.KeyLabelPrefix);
        foreach (var (objectClass, label) in new[] { (CKO.CKO_SECRET_KEY, labels.RecordKey), (CKO.CKO_SECRET_KEY, labels.OprfSeed), (CKO.CKO_PRIVATE_KEY, labels.MemberIdentityKey) })
        {
            var handle = admin.Session.FindSingle(objectClass, label, admin.TokenLabel)!;
            var attributes = admin.Session.GetBools(handle, CKA.CKA_LOCAL, CKA.CKA_NEVER_EXTRACTABLE, CKA.CKA_ALWAYS_SENSITIVE, CKA.CKA_EXTRACTABLE);

            Assert.True(attributes[CKA.CKA_NEVER_EXTRACTABLE], label);
            Assert.True(attributes[CKA.CKA_ALWAYS_SENSITIVE], label);
            Assert.False(attributes[CKA.CKA_EXTRACTABLE], label);

            // DESIGN.md: NSS generated these keys and still says CKA_LOCAL false, so deployment
            // evidence cannot rest on CKA_LOCAL alone. If a later NSS fixes it, this fails and
            // the note can go.
            Assert.False(attributes[CKA.CKA_LOCAL], label);
        }
    }

    [Fact]
    public void SessionsClosedFromOutside_NextOperationLogsInAgain()
    {
        using var token = Nss.OpenProvisionedToken();
        var blob = token.Seal("before"u8, []);
        var generation = token.Generation;

        token.CurrentSlot.CloseAllSessions();

        Assert.Equal("before"u8.ToArray(), token.Unseal(blob, []));
        Assert.Equal(generation + 1, token.Generation);
    }

    [Fact]
    public void EightThreads_MixedOperations_AllResultsCorrect()
    {
        var options = Nss.CreateToken();

        // Correctness under contention, not speed: on a loaded 2-core machine an unlucky thread
        // can wait longer than the default 10 s for a slot, which would be refused as unavailable.
        options.OperationTimeout = TimeSpan.FromMinutes(10);
        var seed = RandomNumberGenerator.GetBytes(64);
        TokenProvisioner.ImportOprfSeed(options, seed);
        TokenProvisioner.ProvisionFleetKeys(options, new FleetKeyGenerationOptions { KeepExisting = true });
        using var token = Pkcs11VaultToken.Open(options);
        var errors = new System.Collections.Concurrent.ConcurrentQueue<string>();

        Parallel.For(0, 8, new ParallelOptions { MaxDegreeOfParallelism = 8 }, t =>
        {
            for (var i = 0; i < 60; i++)
            {
                var message = BitConverter.GetBytes(((long)t << 32) | (uint)i);
                var blob = token.Seal(message, message);
                if (!token.Unseal(blob, message).AsSpan().SequenceEqual(message))
                {
                    errors.Enqueue("unseal returned other data");
                }

                if (!VerifyP256(token.SigningKey.PublicKey, message, token.Sign(message)))
                {
                    errors.Enqueue("signature did not verify");
                }

                var output = new byte[32];
                token.ExpandOprfSeed(message, output);
                if (!output.AsSpan().SequenceEqual(HMACSHA512.HashData(seed, (byte[])[.. message, 0x01]).AsSpan(0, 32)))
                {
                    errors.Enqueue("expand returned a wrong value");
                }
            }
        });

        Assert.Empty(errors);
    }

    [Fact]
    public void Requirements_NssToken_CanServeAndJoinACeremony()
    {
        var report = TokenRequirements.Check(Nss.CreateToken());

        Assert.True(report.CanServeAsMember, report.Verdict);
        Assert.True(report.CanJoinCeremony, report.Verdict);
    }

    [Fact]
    public void Open_OtherInitArgsForTheLoadedModule_IsRefused()
    {
        using var token = Nss.OpenProvisionedToken();
        var other = Nss.CreateToken();
        other.ModuleInitArgs = NssEnvironment.InitArgsFor("/nonexistent");

        var ex = Assert.Throws<TokenConfigurationException>(() => Pkcs11VaultToken.Open(other));

        Assert.Contains("already initialised in this process with other HsmVault:Token:ModuleInitArgs", ex.Message, StringComparison.Ordinal);
    }

    internal static bool VerifyP256(byte[] uncompressedPoint, byte[] message, byte[] signature)
    {
        using var key = ECDsa.Create(new ECParameters
        {
            Curve = ECCurve.NamedCurves.nistP256,
            Q = new ECPoint { X = uncompressedPoint[1..33], Y = uncompressedPoint[33..65] },
        });
        return key.VerifyData(message, signature, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
    }
}
