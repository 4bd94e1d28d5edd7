using System.Diagnostics;
using HsmVault.Testing;
using static HsmVault.Hsm.Tests.TokenTestSupport;

namespace HsmVault.Hsm.Tests;

public class SoftHsmEnvironmentTests
{
    [Fact]
    public void ChildProcess_WithConfigPath_SeesTokensCreatedInProcess()
    {
        var options = Env.CreateProvisionedToken();

        var (exitCode, output) = RunSoftHsmUtil(Env.ChildProcessEnvironment["SOFTHSM2_CONF"], "--show-slots");

        Assert.Equal(0, exitCode);
        Assert.Contains(options.TokenLabel!, output, StringComparison.Ordinal);
        Assert.Contains(options.TokenSerial!, output, StringComparison.Ordinal);
    }

    [Fact]
    public void WriteConfig_ForASeparateDaemon_GivesAnEmptyTokenFolder()
    {
        var directory = Path.Combine(Env.RootDirectory, "daemon-" + Guid.NewGuid().ToString("N"));

        var config = SoftHsmEnvironment.WriteConfig(directory);
        var (exitCode, output) = RunSoftHsmUtil(config, "--show-slots");

        Assert.Equal(0, exitCode);
        Assert.True(Directory.Exists(Path.Combine(directory, "tokens")));
        Assert.Contains("directories.tokendir = " + Path.Combine(directory, "tokens"), File.ReadAllText(config), StringComparison.Ordinal);
        Assert.DoesNotContain("Label:            test-", output, StringComparison.Ordinal);
    }

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public void PinFiles_AreReadableByTheOwnerOnly()
    {
        var options = Env.CreateToken();

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(options.PinFile!));
    }

    private static (int ExitCode, string Output) RunSoftHsmUtil(string config, string arguments)
    {
        var start = new ProcessStartInfo("softhsm2-util", arguments) { RedirectStandardOutput = true, RedirectStandardError = true };
        start.Environment["SOFTHSM2_CONF"] = config;
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEnd() + process.StandardError.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, output);
    }
}
