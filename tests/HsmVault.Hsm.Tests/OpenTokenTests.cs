using HsmVault.Crypto.Signatures;
using HsmVault.Hsm.Internal;
using static HsmVault.Hsm.Tests.TokenTestSupport;

namespace HsmVault.Hsm.Tests;

public class OpenTokenTests
{
    [Fact]
    public void Open_UnknownLabel_MessageListsSlotsPresent()
    {
        var present = Env.CreateToken();
        var options = TokenTestSupport.WithPinFile(present, present.PinFile!);
        options.TokenLabel = "no-such-token";
        options.TokenSerial = null;

        var ex = Assert.Throws<TokenConfigurationException>(() => Pkcs11VaultToken.Open(options));

        Assert.StartsWith("token 'no-such-token' not found; slots present: 0x", ex.Message, StringComparison.Ordinal);
        Assert.Contains($"(label '{present.TokenLabel}', serial '{present.TokenSerial}')", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Open_UnknownSerial_NamesTheSerial()
    {
        var present = Env.CreateToken();
        var options = TokenTestSupport.WithPinFile(present, present.PinFile!);
        options.TokenSerial = "0000000000000000";

        var ex = Assert.Throws<TokenConfigurationException>(() => Pkcs11VaultToken.Open(options));

        Assert.StartsWith($"token '{present.TokenLabel}' (serial '0000000000000000') not found; slots present:", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Open_NoPinConfigured_SaysHowToSetOne()
    {
        var options = Env.CreateProvisionedToken();
        options.PinFile = null;

        var ex = Assert.Throws<TokenConfigurationException>(() => Pkcs11VaultToken.Open(options));

        Assert.Contains("PinFile", ex.Message, StringComparison.Ordinal);
        Assert.Contains("PinEnvironmentVariable", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Open_WrongPin_FailsWithoutRevealingThePin()
    {
        var options = Env.CreateProvisionedToken();
        var wrongPinFile = Path.Combine(Env.RootDirectory, options.TokenLabel + ".wrong.pin");
        File.WriteAllText(wrongPinFile, "not-the-pin-4711\n");

        var ex = Assert.Throws<TokenConfigurationException>(() => Pkcs11VaultToken.Open(TokenTestSupport.WithPinFile(options, wrongPinFile)));

        Assert.Contains($"wrong PIN for token '{options.TokenLabel}'", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("4711", ex.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Open_PinFromEnvironmentVariable_Works()
    {
        var options = Env.CreateProvisionedToken();
        var variable = "HSMVAULT_TEST_PIN_" + options.TokenLabel!.Replace('-', '_');
        Environment.SetEnvironmentVariable(variable, File.ReadAllText(options.PinFile!));
        options.PinFile = null;
        options.PinEnvironmentVariable = variable;

        using var token = Pkcs11VaultToken.Open(options);

        Assert.Equal(options.TokenLabel, token.Description.Label);
    }

    [Fact]
    public void Open_PinEnvironmentVariableUnset_NamesTheVariable()
    {
        var options = Env.CreateProvisionedToken();
        options.PinFile = null;
        options.PinEnvironmentVariable = "HSMVAULT_TEST_PIN_THAT_IS_NOT_SET";

        var ex = Assert.Throws<TokenConfigurationException>(() => Pkcs11VaultToken.Open(options));

        Assert.Contains("HSMVAULT_TEST_PIN_THAT_IS_NOT_SET", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Open_ModuleMissing_NamesThePath()
    {
        var options = Env.CreateProvisionedToken();
        options.ModulePath = "/nonexistent/libpkcs11-missing.so";

        var ex = Assert.Throws<TokenConfigurationException>(() => Pkcs11VaultToken.Open(options));

        Assert.Contains("'/nonexistent/libpkcs11-missing.so' does not exist", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Open_TokenWithoutFleetKeys_NamesTheMissingKey()
    {
        var options = Env.CreateToken();

        var ex = Assert.Throws<TokenConfigurationException>(() => Pkcs11VaultToken.Open(options));

        Assert.Equal($"token '{options.TokenLabel}' has no key 'hsmvault-oprf-seed'; provision it with `hsmvault token init`", ex.Message);
    }

    [Fact]
    public void Open_ProvisionedToken_DescribesTheToken()
    {
        var options = Env.CreateProvisionedToken();

        using var token = Pkcs11VaultToken.Open(options);

        Assert.Equal(options.TokenLabel, token.Description.Label);
        Assert.Equal(options.TokenSerial, token.Description.SerialNumber);
        Assert.Equal("SoftHSM project", token.Description.ManufacturerId);
        Assert.Equal(SignatureAlgorithm.Ed25519, token.SigningKey.Algorithm);
        Assert.Equal(32, token.SigningKey.PublicKey.Length);
    }

    [Fact]
    public void Open_BySerialOnly_FindsTheToken()
    {
        var options = Env.CreateProvisionedToken();
        options.TokenLabel = null;

        using var token = Pkcs11VaultToken.Open(options);

        Assert.Equal(options.TokenSerial, token.Description.SerialNumber);
    }

    [Fact]
    public void Operations_AfterDispose_Throw()
    {
        var token = Env.OpenProvisionedToken();
        token.Dispose();

        Assert.Throws<ObjectDisposedException>(() => token.Seal([1, 2, 3], []));
    }

    [Theory]
    [InlineData("1234\n", "1234")]
    [InlineData("  1234 \r\nsecond line\n", "1234")]
    [InlineData("1234", "1234")]
    public void Pin_FirstLineTrimmed(string fileContent, string expected)
    {
        using var pin = Pin.FromFirstLine(System.Text.Encoding.UTF8.GetBytes(fileContent), "test");

        Assert.Equal(expected, System.Text.Encoding.UTF8.GetString(pin.Value));
    }

    [Fact]
    public void Pin_Dispose_WipesTheBytes()
    {
        var pin = Pin.FromFirstLine("1234"u8, "test");
        var bytes = pin.Value;

        pin.Dispose();

        Assert.All(bytes, b => Assert.Equal(0, b));
    }

    [Fact]
    public void Pin_EmptyFirstLine_Refused()
    {
        var ex = Assert.Throws<TokenConfigurationException>(() => Pin.FromFirstLine(" \nsecond"u8, "PIN file 'x'"));

        Assert.Contains("empty", ex.Message, StringComparison.Ordinal);
    }
}
