namespace HsmVault.Interop.Tests;

/// <summary>
/// @cloudflare/opaque-ts 0.7.5 (the latest release) cannot interoperate with RFC 9807 ristretto255-SHA512:
/// it implements draft-irtf-cfrg-opaque-07 over NIST curves only (see README.md). This pins that
/// evidence, so that a release that gains the final RFC's suite fails here and gets added to the interop tests.
/// </summary>
[Collection(NodeInteropFixtureGroup.Name)]
public sealed class CloudflareOpaqueTsTests(NodeInterop node)
{
    [Fact]
    public void OpaqueTs_ImplementsAnOlderDraft_WithoutRistretto255()
    {
        var description = node.Call("cloudflare.describe");

        // Suites: P-256, P-384, P-521 only; RFC 9807 ristretto255-SHA512 does not exist there.
        var suites = description.GetProperty("suites").EnumerateArray().Select(e => e.GetString()!).ToArray();
        Assert.Equal(new[] { "OPAQUE_P256", "OPAQUE_P384", "OPAQUE_P521" }, suites);

        // Draft labels: RFC 9807 uses "OPAQUEv1-" as the preamble prefix, "OPAQUE-DeriveDiffieHellmanKeyPair"
        // and the RFC 9497 OPRF context "OPRFV1-".
        Assert.Equal("RFCXXXX", description.GetProperty("preambleLabel").GetString());
        Assert.Equal("OPAQUE-DeriveAuthKeyPair", description.GetProperty("dhKeyPairLabel").GetString());
        Assert.Equal("VOPRF08-", description.GetProperty("oprfVersion").GetString());

        // KSFs: identity or scrypt (N = 32768, r = 8, p = 1); no Argon2id.
        var ksfs = description.GetProperty("ksfs").EnumerateArray().Select(e => e.GetString()!).ToArray();
        Assert.Equal(new[] { "Identity", "scrypt" }, ksfs);
    }
}
