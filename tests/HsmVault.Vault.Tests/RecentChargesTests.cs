using HsmVault.Vault.State;

namespace HsmVault.Vault.Tests;

public sealed class RecentChargesTests
{
    private static byte[] Id(byte b) => Enumerable.Repeat(b, VaultCommandCodec.AttemptIdBytes).ToArray();

    [Fact]
    public void Remember_KeepsTheNewestFour_WithWhatEachLeft()
    {
        byte[]? recent = null;
        for (byte i = 1; i <= 6; i++)
        {
            recent = RecentCharges.Remember(recent, Id(i), 10 - i);
        }

        Assert.Null(RecentCharges.RemainingAfter(recent, Id(1)));
        Assert.Null(RecentCharges.RemainingAfter(recent, Id(2)));
        Assert.Equal(7, RecentCharges.RemainingAfter(recent, Id(3)));
        Assert.Equal(4, RecentCharges.RemainingAfter(recent, Id(6)));
        Assert.Equal(RecentCharges.MaxBytes, recent!.Length);
    }

    [Fact]
    public void BareIdsOfAnEarlierState_AreDropped_NotReadAsCharges()
    {
        byte[] earlier = [.. Id(1), .. Id(2)];

        Assert.True(RecentCharges.IsValidLength(earlier.Length));
        Assert.Null(RecentCharges.Normalize(earlier));
        Assert.Null(RecentCharges.RemainingAfter(earlier, Id(1)));
        var next = RecentCharges.Remember(earlier, Id(3), 5);
        Assert.Equal(5, RecentCharges.RemainingAfter(next, Id(3)));
        Assert.Null(RecentCharges.RemainingAfter(next, Id(1)));
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(5)]
    [InlineData(18)]
    [InlineData(RecentCharges.MaxBytes + 17)]
    public void IsValidLength_RefusesWhatNoVersionWrote(int length) => Assert.False(RecentCharges.IsValidLength(length));
}
