using HsmVault.Hsm;

namespace HsmVault.Vault.Tests;

/// <summary>
/// A user identity is checked once where it enters (TryCreate, which says what is wrong),
/// has one binary encoding that everything binds to, and compares by value.
/// </summary>
public sealed class UserIdentityTests
{
    public static TheoryData<string, string, string> Refused => new()
    {
        { "", "alice", "the tenant is empty" },
        { "tenant", "", "the user id is empty" },
        { "tenant", "ali\nce", "the user id contains control characters" },
        { "ten\u0000ant", "alice", "the tenant contains control characters" },
        // 129 two-byte characters: 258 bytes, though only 129 characters.
        { "tenant", new string('\u00e9', 129), "the user id is longer than 256 bytes of UTF-8" },
        { new string('t', 257), "alice", "the tenant is longer than 256 bytes of UTF-8" },
    };

    [Theory]
    [MemberData(nameof(Refused))]
    public void TryCreate_RefusesABadPart_SayingWhich(string tenant, string userId, string problem)
    {
        Assert.False(UserIdentity.TryCreate(tenant, userId, out var identity, out var said));

        Assert.Null(identity);
        Assert.Equal(problem, said);
        Assert.Equal(problem, Assert.Throws<ArgumentException>(() => new UserIdentity(tenant, userId)).Message);
    }

    [Fact]
    public void TryCreate_RefusesNull()
    {
        Assert.False(UserIdentity.TryCreate(null, "alice", out _, out var problem));
        Assert.Equal("the tenant is empty", problem);
    }

    [Fact]
    public void TryCreate_AcceptsTheLongestParts()
    {
        var longest = new string('\u00e9', UserIdentity.MaxPartBytes / 2);

        Assert.True(UserIdentity.TryCreate(longest, longest, out var identity, out var problem));

        Assert.Null(problem);
        Assert.Equal(4 + (2 * UserIdentity.MaxPartBytes), identity.Encoded.Length);
    }

    [Fact]
    public void Encoded_IsBothPartsLengthPrefixed()
    {
        var identity = new UserIdentity("tenänt", "alice");

        Assert.Equal("000774656ec3a46e740005616c696365", Convert.ToHexStringLower(identity.Encoded));
    }

    [Fact]
    public void Encoded_TellsApartIdentitiesWhosePartsConcatenateAlike()
    {
        var one = new UserIdentity("ab", "c");
        var other = new UserIdentity("a", "bc");

        Assert.NotEqual(one, other);
        Assert.False(one.Encoded.SequenceEqual(other.Encoded));
        Assert.NotEqual(SealBinding.Record("fleet", one.Encoded, 1), SealBinding.Record("fleet", other.Encoded, 1));
        Assert.NotEqual(SealBinding.RegistrationTicket("fleet", one.Encoded), SealBinding.RegistrationTicket("fleet", other.Encoded));
    }

    [Fact]
    public void Identities_CompareByValue_Ordinal()
    {
        var alice = new UserIdentity("tenant", "alice");
        var again = new UserIdentity("tenant", "alice");
        var upper = new UserIdentity("tenant", "Alice");

        Assert.True(alice == again);
        Assert.Equal(alice.GetHashCode(), again.GetHashCode());
        Assert.True(alice != upper);
        Assert.False(alice.Equals(null));
        Assert.Single(new HashSet<UserIdentity> { alice, again });
    }
}
