using HsmVault.Testing.Daemons;
using HsmVault.Witness.Tests.Support;

namespace HsmVault.Witness.Tests;

/// <summary>The <c>hsmvault-witness</c> executable refuses a configuration that cannot work, saying why, without a stack trace.</summary>
public sealed class WitnessDaemonTests : IDisposable
{
    private readonly WitnessSetup _setup = new(namespaces: 1);
    private readonly string _configDirectory = Directory.CreateTempSubdirectory("hsmvault-witness-config-").FullName;

    [Theory]
    [InlineData("HsmVault:Token:TokenLabel", "no-such-token", "token 'no-such-token'")]
    [InlineData("HsmVault:Witness:KeyLabel", "no-such-key", "has no key 'no-such-key'")]
    [InlineData("HsmVault:Witness:Origin", "has space", "Origin")]
    [InlineData("HsmVault:Witness:Namespaces:0:OperatorKeys:0:PublicKey", "AAAA", "PublicKey")]
    public async Task Start_WithABadSetting_ExitsWithItsMessage(string key, string value, string expected)
    {
        var settings = _setup.Settings();
        settings[key] = value;
        if (key == "HsmVault:Token:TokenLabel")
        {
            settings["HsmVault:Token:TokenSerial"] = null;
        }

        var config = DaemonConfigFile.Write(settings, Path.Combine(_configDirectory, "witness.json"));
        var refusal = await Assert.ThrowsAsync<InvalidOperationException>(() => ChildDaemon.StartWitnessAsync(config));
        Assert.Contains("hsmvault-witness: ", refusal.Message, StringComparison.Ordinal);
        Assert.Contains(expected, refusal.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", refusal.Message, StringComparison.Ordinal);
    }

    public void Dispose()
    {
        _setup.Dispose();
        Directory.Delete(_configDirectory, recursive: true);
    }
}
