using System.Runtime.Versioning;

namespace HsmVault.EndToEnd.Tests;

/// <summary>
/// A data folder that other users can read (as older versions left it: 0755 with 0644 files) is
/// made private at start-up, with a warning.
/// </summary>
[UnsupportedOSPlatform("windows")]
public sealed class DataFolderTests : DaemonTest
{
    [Fact]
    public async Task Start_WithDataFolderOpenToOthers_MakesItPrivate_AndWarns()
    {
        await Daemon.CreateClient("alice").RegisterAsync(Setup.NewPassword(), Setup.NewBackupKey());
        await Daemon.StopAsync();
        const UnixFileMode open = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
        File.SetUnixFileMode(Setup.DataDirectory, open | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute);
        var files = Directory.GetFiles(Setup.DataDirectory, "*", SearchOption.AllDirectories);
        Assert.NotEmpty(files);
        foreach (var file in files)
        {
            File.SetUnixFileMode(file, open);
        }

        await Daemon.RestartAsync();

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(Setup.DataDirectory));
        Assert.All(files, file => Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file)));
        Assert.True(Daemon.Logs.Contains(1400));
        Assert.True((await Daemon.CreateClient("alice").GetStatusAsync()).Registered);
    }
}
