using HsmVault.Crypto.Signatures;
using HsmVault.Transparency;

namespace HsmVault.Witness.Tests;

/// <summary>The statement's byte layout, as the README documents it, and refusal of anything else.</summary>
public sealed class WitnessStatementTests
{
    private static readonly byte[] Digest = [.. Enumerable.Range(0, 32).Select(i => (byte)i)];

    [Fact]
    public void Encode_LaysOutEveryField_AsDocumented()
    {
        var statement = new WitnessStatement(SignatureAlgorithm.Ed25519, "ns.a", 0x0102030405060708, 42, Digest);
        var expected = Convert.FromHexString(
            "48736d5661756c74207769746e6573732073746174656d656e7420763100" + // "HsmVault witness statement v1" 0x00
            "0001" +                                                           // ciphersuite 1 = Ed25519
            "04" + "6e732e61" +                                                // namespace "ns.a"
            "0102030405060708" +                                               // timestamp
            "000000000000002a" +                                               // epoch 42
            Convert.ToHexString(Digest));
        Assert.Equal(expected, statement.Encode());
        Assert.Equal(statement, WitnessStatement.Decode(expected));
    }

    [Fact]
    public void Decode_RefusesAnythingButTheCanonicalEncoding()
    {
        var good = new WitnessStatement(SignatureAlgorithm.Ed25519, "ns", 1, 1, Digest).Encode();
        Assert.Throws<TransparencyException>(() => WitnessStatement.Decode(good.AsSpan()[..^1]));
        Assert.Throws<TransparencyException>(() => WitnessStatement.Decode([.. good, 0]));
        Assert.Throws<TransparencyException>(() => WitnessStatement.Decode([.. good.Select((b, i) => i == 0 ? (byte)'h' : b)]));
        Assert.Throws<TransparencyException>(() => WitnessStatement.Decode([.. good.Select((b, i) => i == 31 ? (byte)9 : b)]));
        Assert.Throws<TransparencyException>(() => WitnessStatement.Decode([.. good.Select((b, i) => i == 33 ? (byte)' ' : b)]));
        Assert.Throws<TransparencyException>(() => new WitnessStatement(SignatureAlgorithm.Ed25519, "ns", 1, 0, Digest).Encode());
        Assert.Throws<TransparencyException>(() => new WitnessStatement(SignatureAlgorithm.Ed25519, "", 1, 1, Digest).Encode());
        Assert.Throws<TransparencyException>(() => new WitnessStatement(SignatureAlgorithm.Ed25519, new string('a', 129), 1, 1, Digest).Encode());
        Assert.Throws<TransparencyException>(() => new WitnessStatement(SignatureAlgorithm.Ed25519, "ns", 1, 1, Digest[..31]).Encode());
    }

    [Fact]
    public void SubmissionMessage_IsDomainSeparatedFromTheStatement()
    {
        var submission = WitnessSubmission.SignedMessage("ns", 7, Digest);
        Assert.Equal(Convert.FromHexString("48736d5661756c74207769746e657373207375626d697373696f6e20763100" + "02" + "6e73" + "0000000000000007" + Convert.ToHexString(Digest)), submission);
        Assert.Throws<TransparencyException>(() => WitnessStatement.Decode(submission));
    }
}
