using System.Text.RegularExpressions;

namespace HsmVault.EndToEnd.Tests;

/// <summary>The `hsmvault` CLI, run as a child process against an in-process daemon.</summary>
public sealed partial class CliTests : DaemonTest
{
    [Fact]
    public async Task Cli_RegisterThenRecover_PrintsTheSameFingerprint()
    {
        var passwordFile = WritePasswordFile("password", Setup.NewPassword());
        var wrongFile = WritePasswordFile("wrong", Setup.NewPassword());

        var register = await CliAsync("register", "--user", "dave", "--password-file", passwordFile);
        var wrong = await CliAsync("recover", "--user", "dave", "--password-file", wrongFile);
        var status = await CliAsync("status", "--user", "dave");
        var recover = await CliAsync("recover", "--user", "dave", "--password-file", passwordFile);
        var delete = await CliAsync("delete", "--user", "dave");
        var after = await CliAsync("status", "--user", "dave");

        Assert.True(register.ExitCode == 0, register.AllOutput);
        var registered = Fingerprint().Match(register.StandardOutput);
        Assert.True(registered.Success, register.StandardOutput);
        Assert.Equal(3, wrong.ExitCode);
        Assert.Contains("wrong password; 9 guesses left", wrong.StandardError, StringComparison.Ordinal);
        Assert.True(status.ExitCode == 0, status.AllOutput);
        Assert.Contains("registered; 9 of 10 guesses remaining", status.StandardOutput, StringComparison.Ordinal);
        Assert.True(recover.ExitCode == 0, recover.AllOutput);
        var recovered = Fingerprint().Match(recover.StandardOutput);
        Assert.True(recovered.Success, recover.StandardOutput);
        Assert.Equal(registered.Groups["fp"].Value, recovered.Groups["fp"].Value);

        // The CLI shows the user the recovered key; the daemon must never have seen or logged it.
        var keyHex = BackupKeyLine().Match(recover.StandardOutput);
        Assert.True(keyHex.Success, recover.StandardOutput);
        Setup.AddSecret(keyHex.Groups["key"].Value);
        Assert.True(delete.ExitCode == 0, delete.AllOutput);
        Assert.Contains("not registered", after.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cli_WithoutIdentity_ExitsWithUsageError()
    {
        var result = await ChildProcesses.RunAsync(ChildProcesses.CliDll, ["status", "--server", Daemon.Address.ToString()]);

        Assert.Equal(64, result.ExitCode);
        Assert.Contains("--jwt-file", result.StandardError, StringComparison.Ordinal);
    }

    [GeneratedRegex(@"fingerprint:? (?<fp>[0-9a-f]{4}(:[0-9a-f]{4}){3})")]
    private static partial Regex Fingerprint();

    [GeneratedRegex(@"backup key: (?<key>[0-9a-f]{64})")]
    private static partial Regex BackupKeyLine();

    private string WritePasswordFile(string name, byte[] password)
    {
        var path = Path.Combine(Setup.WorkDirectory, name + ".txt");
        File.WriteAllBytes(path, [.. password, (byte)'\n']);
        return path;
    }

    private Task<ProcessResult> CliAsync(params string[] arguments) =>
        ChildProcesses.RunAsync(
            ChildProcesses.CliDll,
            [.. arguments, "--server", Daemon.Address.ToString(), "--tenant", DaemonSetup.Tenant, "--tenant-key", Setup.TenantPrivateKeyFile, "--unverified-fleet"]);
}
