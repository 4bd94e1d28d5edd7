using System.Diagnostics;
using System.Globalization;
using System.Runtime.Versioning;
using System.Text.RegularExpressions;
using Grpc.Net.Client;
using HsmVault.EndToEnd.Tests.Support;
using ProtoVault = HsmVault.Protocol.V1.Vault;

namespace HsmVault.EndToEnd.Tests;

/// <summary>
/// The real hsmvaultd keeps its files to itself and its memory out of core files and swap: the
/// data folder is 0700 and everything in it 0600, core dumps are off, memory is locked where the
/// system allows it and the daemon runs (with a warning) where it does not.
/// </summary>
[UnsupportedOSPlatform("windows")]
public sealed partial class ProcessHardeningTests : IAsyncLifetime
{
    private const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode PrivateFolder = Private | UnixFileMode.UserExecute;

    private readonly DaemonSetup _setup = DaemonSetup.Create();
    private readonly List<ChildDaemon> _daemons = [];
    private readonly List<GrpcChannel> _channels = [];

    [Fact]
    public async Task Daemon_AfterWrites_HasDataFolder0700_AndEveryFile0600()
    {
        var daemon = await StartAsync(_setup.Configuration());

        // Registration writes the Raft log and the state database.
        await Messages.RegisterAsync(Client(daemon), _setup.Headers("alice"), _setup.NewPassword(), _setup.NewBackupKey());

        Assert.Equal(PrivateFolder, File.GetUnixFileMode(_setup.DataDirectory));
        var entries = Directory.EnumerateFileSystemEntries(_setup.DataDirectory, "*", SearchOption.AllDirectories).ToList();
        Assert.Contains(entries, e => File.Exists(e));
        foreach (var entry in entries)
        {
            var expected = Directory.Exists(entry) ? PrivateFolder : Private;
            Assert.True(File.GetUnixFileMode(entry) == expected, $"{entry}: {File.GetUnixFileMode(entry)}");
        }
    }

    [Fact]
    public async Task Daemon_HasNoCoreFileLimit_AndLocksItsMemoryOrSaysWhyNot()
    {
        var daemon = await StartAsync(_setup.Configuration());

        var limits = await File.ReadAllTextAsync($"/proc/{daemon.Id}/limits");
        var status = await File.ReadAllTextAsync($"/proc/{daemon.Id}/status");

        // Soft and hard limit 0: the process cannot raise it again.
        Assert.Matches(CoreLimitZero(), limits);
        var locked = long.Parse(LockedMemory().Match(status).Groups["kib"].Value, CultureInfo.InvariantCulture);
        Assert.True(locked > 0 || daemon.Output.Contains("Memory is not locked", StringComparison.Ordinal),
            $"VmLck {locked} kB and no warning:\n{daemon.Output}");
    }

    [Fact]
    public async Task Daemon_WithoutCapIpcLock_WarnsAndServes()
    {
        var daemon = await ChildDaemon.StartAsync(WithoutMemoryLocking(_setup.Configuration()));
        _daemons.Add(daemon);

        var status = await Client(daemon).GetStatusAsync(new Protocol.V1.GetStatusRequest(), _setup.Headers("alice"));

        Assert.False(status.Registered);
        Assert.Contains("Memory is not locked: cannot lock the daemon's memory (mlockall:", daemon.Output, StringComparison.Ordinal);
        Assert.Contains("HsmVault:Process:LockMemory", daemon.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Daemon_RequiringLockedMemory_WithoutCapIpcLock_ExitsNonZero_SayingWhy()
    {
        var settings = _setup.Configuration();
        settings["HsmVault:Process:LockMemory"] = "Required";
        var daemon = await ChildDaemon.StartAsync(WithoutMemoryLocking(settings), waitUntilListening: false);
        _daemons.Add(daemon);

        var exitCode = await daemon.WaitForExitAsync();

        Assert.NotEqual(0, exitCode);
        Assert.Contains("hsmvaultd: cannot lock the daemon's memory", daemon.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", daemon.Output, StringComparison.Ordinal);
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var daemon in _daemons)
        {
            await daemon.DisposeAsync();
        }

        foreach (var channel in _channels)
        {
            channel.Dispose();
        }

        _setup.Dispose();
    }

    [GeneratedRegex(@"^Max core file size\s+0\s+0\s", RegexOptions.Multiline)]
    private static partial Regex CoreLimitZero();

    [GeneratedRegex(@"^VmLck:\s+(?<kib>\d+) kB", RegexOptions.Multiline)]
    private static partial Regex LockedMemory();

    /// <summary>
    /// hsmvaultd run without CAP_IPC_LOCK (dropped by setpriv, as for a daemon that does not run
    /// as root) and with a 64 KiB RLIMIT_MEMLOCK (prlimit): mlockall must fail.
    /// </summary>
    private ProcessStartInfo WithoutMemoryLocking(Dictionary<string, string?> settings)
    {
        var start = ChildProcesses.StartInfo(ChildProcesses.DaemonDll, ["--config", _setup.WriteJsonConfig(settings)]);
        string[] wrapper = ["--memlock=65536:65536", "setpriv", "--inh-caps=-ipc_lock", "--bounding-set=-ipc_lock", "--", start.FileName];
        for (var i = wrapper.Length - 1; i >= 0; i--)
        {
            start.ArgumentList.Insert(0, wrapper[i]);
        }

        start.FileName = "prlimit";
        return start;
    }

    private async Task<ChildDaemon> StartAsync(Dictionary<string, string?> settings)
    {
        var daemon = await ChildDaemon.StartAsync(_setup.WriteJsonConfig(settings));
        _daemons.Add(daemon);
        return daemon;
    }

    private ProtoVault.VaultClient Client(ChildDaemon daemon)
    {
        var channel = GrpcChannel.ForAddress(daemon.Address);
        _channels.Add(channel);
        return new ProtoVault.VaultClient(channel);
    }
}
