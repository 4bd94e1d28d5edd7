using HsmVault.Crypto.Opaque;
using HsmVault.Hsm;
using HsmVault.Vault.Records;

namespace HsmVault.Vault.Tests;

/// <summary>Records sealed by a real token: they open only as the user, version and fleet they were sealed for.</summary>
public sealed class RecordSealerTests : IDisposable
{
    private static readonly UserIdentity Alice = new("tenant", "alice");
    private static readonly UserIdentity Bob = new("tenant", "bob");
    private readonly Pkcs11VaultToken _token = Tokens.OpenProvisioned();
    private readonly RecordSealer _sealer;
    private readonly RecordContents _contents = new(Bytes.Random(UserIdentity.RegistrationNonceBytes), Bytes.Random(OpaqueSizes.RegistrationRecord), 7, Bytes.Random(100));

    public RecordSealerTests()
    {
        _sealer = new RecordSealer(_token, "fleet-a");
    }

    [Fact]
    public void SealThenUnseal_ReturnsContents()
    {
        var sealedRecord = _sealer.Seal(Alice, 3, _contents);

        var opened = _sealer.Unseal(Alice, 3, sealedRecord);

        Assert.Equal(_contents.RegistrationRecord, opened.RegistrationRecord);
        Assert.Equal(7, opened.GuessLimit);
        Assert.Equal(_contents.EncryptedSecret, opened.EncryptedSecret);
        Assert.True(sealedRecord.AsSpan().IndexOf(_contents.EncryptedSecret.AsSpan(0, 16)) < 0, "the secret shows in the sealed blob");
    }

    [Fact]
    public void Seal_Twice_GivesDifferentBlobs()
    {
        Assert.NotEqual(_sealer.Seal(Alice, 1, _contents), _sealer.Seal(Alice, 1, _contents));
    }

    [Fact]
    public void Unseal_EveryFlippedByte_ThrowsDataLoss()
    {
        var sealedRecord = _sealer.Seal(Alice, 1, _contents);

        // IV, ciphertext and tag: every position is covered by GCM.
        for (var i = 0; i < sealedRecord.Length; i += 13)
        {
            var tampered = (byte[])sealedRecord.Clone();
            tampered[i] ^= 0x01;
            var e = Assert.Throws<VaultException>(() => _sealer.Unseal(Alice, 1, tampered));
            Assert.Equal(VaultError.DataLoss, e.Error);
        }

        var lastByte = (byte[])sealedRecord.Clone();
        lastByte[^1] ^= 0x80;
        Assert.Equal(VaultError.DataLoss, Assert.Throws<VaultException>(() => _sealer.Unseal(Alice, 1, lastByte)).Error);
    }

    [Fact]
    public void Unseal_AnotherUsersBlob_ThrowsDataLoss()
    {
        var sealedForAlice = _sealer.Seal(Alice, 1, _contents);

        var e = Assert.Throws<VaultException>(() => _sealer.Unseal(Bob, 1, sealedForAlice));

        Assert.Equal(VaultError.DataLoss, e.Error);
    }

    [Fact]
    public void Unseal_OlderVersionBlobAsNewerVersion_ThrowsDataLoss()
    {
        var versionOne = _sealer.Seal(Alice, 1, _contents);

        var e = Assert.Throws<VaultException>(() => _sealer.Unseal(Alice, 2, versionOne));

        Assert.Equal(VaultError.DataLoss, e.Error);
    }

    [Fact]
    public void Unseal_BlobOfAnotherFleet_ThrowsDataLoss()
    {
        var otherFleet = new RecordSealer(_token, "fleet-b").Seal(Alice, 1, _contents);

        Assert.Equal(VaultError.DataLoss, Assert.Throws<VaultException>(() => _sealer.Unseal(Alice, 1, otherFleet)).Error);
    }

    [Fact]
    public void Unseal_UserIdsThatConcatenateAlike_DoNotShareBlobs()
    {
        // "ab"/"c" and "a"/"bc" must be different identities in the associated data.
        var sealedRecord = _sealer.Seal(new UserIdentity("ab", "c"), 1, _contents);

        Assert.Equal(VaultError.DataLoss, Assert.Throws<VaultException>(() => _sealer.Unseal(new UserIdentity("a", "bc"), 1, sealedRecord)).Error);
    }

    [Fact]
    public void Unseal_BlobFromAnotherToken_ThrowsDataLoss()
    {
        using var otherToken = Tokens.OpenProvisioned();
        var foreign = new RecordSealer(otherToken, "fleet-a").Seal(Alice, 1, _contents);

        Assert.Equal(VaultError.DataLoss, Assert.Throws<VaultException>(() => _sealer.Unseal(Alice, 1, foreign)).Error);
    }

    public void Dispose() => _token.Dispose();
}
