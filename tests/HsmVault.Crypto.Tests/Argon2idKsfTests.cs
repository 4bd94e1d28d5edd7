using HsmVault.Crypto.Opaque;

namespace HsmVault.Crypto.Tests;

public sealed class Argon2idKsfTests
{
    [Fact]
    public void Rfc9106Section53Vector_IsReproduced()
    {
        // RFC 9106 section 5.3: Argon2id v=0x13, m=32 KiB, t=3, p=4, password 32 x 0x01, salt 16 x 0x02,
        // secret 8 x 0x03, associated data 12 x 0x04, tag length 32.
        var tag = Argon2idKsf.Compute(
            Filled(32, 0x01), Filled(16, 0x02), Filled(8, 0x03), Filled(12, 0x04), new Argon2idParameters(32, 3, 4), 32);

        Assert.Equal("0D640DF58D78766C08C037A34A8B53C9D01EF0452D75B65EB52520E96B01E659", Convert.ToHexString(tag));
    }

    [Fact]
    public void Stretch_IsDeterministic64BytesAndDependsOnParameters()
    {
        var input = Filled(64, 0x42);
        var ksf = new Argon2idKsf(new Argon2idParameters(1024, 1, 2));

        var first = ksf.Stretch(input);
        var second = ksf.Stretch(input);
        var otherParameters = new Argon2idKsf(new Argon2idParameters(1024, 1, 1)).Stretch(input);

        Assert.Equal(64, first.Length);
        Assert.Equal(first, second);
        Assert.NotEqual(first, otherParameters);
        Assert.NotEqual(first, ksf.Stretch(Filled(64, 0x43)));
    }

    [Fact]
    public void Stretch_UsesZeroSaltAndNoSecretOrAssociatedData()
    {
        var input = Filled(64, 0x07);
        var parameters = new Argon2idParameters(256, 1, 2);

        var expected = Argon2idKsf.Compute(input, new byte[16], null, null, parameters, 64);

        Assert.Equal(expected, new Argon2idKsf(parameters).Stretch(input));
    }

    [Fact]
    public void Rfc9106MemoryConstrained_IsSixtyFourMebibytesThreePassesFourLanes()
    {
        Assert.Equal(new Argon2idParameters(65536, 3, 4), Argon2idParameters.Rfc9106MemoryConstrained);
    }

    [Theory]
    [InlineData(1024, 0, 1)]
    [InlineData(1024, 1, 0)]
    [InlineData(15, 1, 2)]
    public void Constructor_RejectsInvalidParameters(int memoryKib, int iterations, int parallelism)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new Argon2idKsf(new Argon2idParameters(memoryKib, iterations, parallelism)));
    }

    [Fact]
    public void IdentityKsf_ReturnsACopyOfItsInput()
    {
        var input = Filled(64, 0x09);
        var output = new IdentityKsf().Stretch(input);
        Assert.Equal(input, output);
        Assert.NotSame(input, output);
    }

    private static byte[] Filled(int length, byte value) => Enumerable.Repeat(value, length).ToArray();
}
