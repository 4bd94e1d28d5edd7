using System.Security.Cryptography;
using HsmVault.Crypto.Opaque;
using HsmVault.Crypto.Signatures;
using HsmVault.Transparency.Bundles;

namespace HsmVault.Evidence.Tests;

/// <summary>The audit's account of what changed between two logged bundles of a namespace.</summary>
public sealed class BundleChangesTests
{
    [Fact]
    public void Describe_NamesANewFleetsKeys_AndItsMembers()
    {
        var first = Bundle("fleet-a", 1, ServerKey(), ["m1", "m2"]);
        var second = Bundle("fleet-b", 2, ServerKey(), ["m2", "m3"]);

        var text = BundleChanges.Describe(Logged(first), Logged(second));

        Assert.Contains("new fleet 'fleet-b' (was 'fleet-a')", text, StringComparison.Ordinal);
        Assert.Contains("OPAQUE server key", text, StringComparison.Ordinal);
        Assert.Contains("fleet signing key", text, StringComparison.Ordinal);
        Assert.Contains("member 'm3' added", text, StringComparison.Ordinal);
        Assert.Contains("member 'm1' removed", text, StringComparison.Ordinal);
        Assert.Contains("member 'm2' identity key changed", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Describe_ARenewal_SaysNothingChanged_AndABlobCannotBeCompared()
    {
        var first = Bundle("fleet-a", 1, ServerKey(), ["m1"]);
        var renewed = first with { Epoch = 2, NotAfterUnixMs = first.NotAfterUnixMs + 1000 };

        Assert.Contains("no key or member changed", BundleChanges.Describe(Logged(first), Logged(renewed)), StringComparison.Ordinal);
        Assert.Contains("cannot be compared", BundleChanges.Describe(Logged(first), Logged(first) with { Bundle = null }), StringComparison.Ordinal);
    }

    private static LoggedEpoch Logged(ValidationBundle bundle) =>
        new(bundle.Namespace, bundle.Epoch, bundle.Epoch - 1, SHA256.HashData(BundleCodec.Encode(bundle)), DateTimeOffset.UtcNow, bundle);

    private static ValidationBundle Bundle(string fleet, ulong epoch, byte[] opaqueKey, string[] members)
    {
        var now = (ulong)DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        List<BundleKey> keys =
        [
            new(BundleKeyRole.OpaqueServer, "", 0, opaqueKey),
            new(BundleKeyRole.FleetSigning, "", (ushort)SignatureAlgorithm.Ed25519, RandomNumberGenerator.GetBytes(32)),
            .. members.Select(m => new BundleKey(BundleKeyRole.MemberIdentity, m, (ushort)SignatureAlgorithm.Ed25519, RandomNumberGenerator.GetBytes(32))),
        ];
        return new ValidationBundle("ns", fleet, epoch, keys, new BundleOpaqueConfiguration(BundleOpaqueConfiguration.DefaultSuite, 65536, 3, 4, []),
            [.. members.Select(m => new BundleMember(m, $"http://{m}:7101"))], now, now + 3_600_000, new byte[32]);
    }

    private static byte[] ServerKey()
    {
        using var pair = ServerKeyPair.Generate();
        return pair.PublicKey.ToArray();
    }
}
