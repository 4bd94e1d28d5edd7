using HsmVault.Crypto.Opaque;

namespace HsmVault.Crypto.Tests;

public sealed class ServerKeyPairTests
{
    [Fact]
    public void FromPrivateKey_OfGeneratedKey_GivesSamePublicKey()
    {
        using var generated = ServerKeyPair.Generate();
        var privateKey = new byte[OpaqueSizes.PrivateKey];
        generated.CopyPrivateKey(privateKey);

        using var loaded = ServerKeyPair.FromPrivateKey(privateKey);

        Assert.Equal(OpaqueSizes.PublicKey, loaded.PublicKey.Length);
        Assert.Equal(generated.PublicKey.ToArray(), loaded.PublicKey.ToArray());
        Assert.NotEqual(new byte[OpaqueSizes.PrivateKey], privateKey);
    }

    [Fact]
    public void Generate_GivesDistinctKeys()
    {
        using var first = ServerKeyPair.Generate();
        using var second = ServerKeyPair.Generate();
        Assert.NotEqual(first.PublicKey.ToArray(), second.PublicKey.ToArray());
    }

    [Theory]
    [InlineData("0000000000000000000000000000000000000000000000000000000000000000")]
    // The group order L itself: not reduced.
    [InlineData("EDD3F55C1A631258D69CF7A2DEF9DE1400000000000000000000000000000010")]
    [InlineData("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF")]
    [InlineData("0102")]
    public void FromPrivateKey_RejectsZeroNonCanonicalAndWrongLength(string privateKeyHex)
    {
        Assert.Throws<ArgumentException>(() => ServerKeyPair.FromPrivateKey(Convert.FromHexString(privateKeyHex)));
    }

    [Fact]
    public void FromPrivateKey_AcceptsLargestCanonicalScalar()
    {
        // L - 1.
        using var pair = ServerKeyPair.FromPrivateKey(Convert.FromHexString("ECD3F55C1A631258D69CF7A2DEF9DE1400000000000000000000000000000010"));
        Assert.Equal(OpaqueSizes.PublicKey, pair.PublicKey.Length);
    }

    [Fact]
    public void Dispose_WipesPrivateKeyAndBlocksUse()
    {
        var pair = ServerKeyPair.Generate();
        pair.Dispose();

        Assert.Throws<ObjectDisposedException>(() => pair.PublicKey.ToArray());
        Assert.Throws<ObjectDisposedException>(() => pair.CopyPrivateKey(new byte[OpaqueSizes.PrivateKey]));
    }
}
