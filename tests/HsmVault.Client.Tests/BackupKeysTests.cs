using System.Security.Cryptography;
using System.Text;
using HsmVault.Protocol.V1;

namespace HsmVault.Client.Tests;

/// <summary>The client's backup keys, fingerprints and recovery codes: the formats the README documents.</summary>
public sealed class BackupKeysTests
{
    [Fact]
    public void Fingerprint_IsTheFirstEightBytesOfSha256_InFourGroups()
    {
        var key = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();
        var hex = Convert.ToHexStringLower(SHA256.HashData(key))[..16];

        Assert.Equal($"{hex[..4]}:{hex[4..8]}:{hex[8..12]}:{hex[12..16]}", BackupKeys.Fingerprint(key));
    }

    [Fact]
    public void KeyFromRecoveryCode_IsHkdfSha512OfTheDigits_IgnoringSpacesAndDashes()
    {
        var code = BackupKeys.NewRecoveryCode();
        var expected = HKDF.DeriveKey(HashAlgorithmName.SHA512, Encoding.ASCII.GetBytes(code), 32, [], Encoding.ASCII.GetBytes("HsmVault recovery code v1"));

        Assert.Equal(64, code.Length);
        Assert.All(code, c => Assert.True(char.IsAsciiDigit(c)));
        Assert.Equal(expected, BackupKeys.KeyFromRecoveryCode(code));
        Assert.Equal(expected, BackupKeys.KeyFromRecoveryCode(BackupKeys.FormatRecoveryCode(code)));
        Assert.Equal(expected, BackupKeys.KeyFromRecoveryCode(BackupKeys.FormatRecoveryCode(code).Replace(' ', '-')));
    }

    [Theory]
    [InlineData("")]
    [InlineData("123")]
    [InlineData("12345678901234567890123456789012345678901234567890123456789012345")]
    [InlineData("1234567890123456789012345678901234567890123456789012345678901x34")]
    public void KeyFromRecoveryCode_NotSixtyFourDigits_IsRefused(string code) =>
        Assert.Throws<FormatException>(() => BackupKeys.KeyFromRecoveryCode(code));

    [Fact]
    public void NewKey_IsThirtyTwoFreshBytes()
    {
        var a = BackupKeys.NewKey();
        var b = BackupKeys.NewKey();

        Assert.Equal(BackupKeys.KeyBytes, a.Length);
        Assert.NotEqual(a, b);
    }

    [Fact]
    public void ReasonOf_ReadsTheReasonTrailer()
    {
        var trailers = new Grpc.Core.Metadata { { "hsmvault-reason", "NOT_REGISTERED" } };
        var refused = new Grpc.Core.RpcException(new Grpc.Core.Status(Grpc.Core.StatusCode.NotFound, "no record"), trailers);

        Assert.Equal(RefusalReason.NotRegistered, VaultClient.ReasonOf(refused));
        Assert.Equal(RefusalReason.Unspecified, VaultClient.ReasonOf(new Grpc.Core.RpcException(new Grpc.Core.Status(Grpc.Core.StatusCode.NotFound, "no record"))));
    }
}
