namespace HsmVault.EndToEnd.Tests;

/// <summary>
/// hsmvaultd's commands on a stopped member's state, run as the operator runs them: the real
/// executable as a child process, on a provisioned token and data folder.
/// </summary>
public sealed class MemberCommandTests : IDisposable
{
    private readonly DaemonSetup _setup = DaemonSetup.Create();

    [Fact]
    public async Task SeedBenchUsers_NewMember_WritesTheUsersIntoItsState()
    {
        var config = _setup.WriteJsonConfig(_setup.Configuration());

        var seeded = await ChildProcesses.RunAsync(ChildProcesses.DaemonDll, ["seed-bench-users", "--config", config, "--users", "25", "--tenant", DaemonSetup.Tenant]);

        Assert.True(seeded.ExitCode == 0, seeded.AllOutput);
        Assert.Contains($"25 synthetic users of tenant '{DaemonSetup.Tenant}'", seeded.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RecoverFromDisaster_FreshMember_ReportsNothingKeptOrCleared()
    {
        var config = _setup.WriteJsonConfig(_setup.Configuration());

        var result = await ChildProcesses.RunAsync(ChildProcesses.DaemonDll, ["recover-from-disaster", "--config", config]);

        Assert.True(result.ExitCode == 0, result.AllOutput);
        Assert.Contains("no high-water mark", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("no divergence recorded", result.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MemberCommand_UnknownOption_IsAUsageError()
    {
        var config = _setup.WriteJsonConfig(_setup.Configuration());

        var result = await ChildProcesses.RunAsync(ChildProcesses.DaemonDll, ["recover-from-disaster", "--config", config, "--users", "3"]);

        Assert.Equal(64, result.ExitCode);
        Assert.Contains("takes no --users", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cli_OldMemberCommand_NamesTheDaemonCommand()
    {
        var result = await ChildProcesses.RunAsync(ChildProcesses.CliDll, ["member", "seed-bench-users", "--config", "m.json"]);

        Assert.Equal(64, result.ExitCode);
        Assert.Contains("hsmvaultd seed-bench-users", result.StandardError, StringComparison.Ordinal);
    }

    public void Dispose() => _setup.Dispose();
}
