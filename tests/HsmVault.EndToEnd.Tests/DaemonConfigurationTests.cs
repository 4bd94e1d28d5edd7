using HsmVault.Server;
using Microsoft.Extensions.Configuration;

namespace HsmVault.EndToEnd.Tests;

public class DaemonConfigurationTests
{
    [Fact]
    public void CreateBuilder_WatchesNoConfigurationFile()
    {
        // A file source that reloads on change is what makes the host watch the content root (the working
        // directory) recursively; none may.
        var config = Path.Combine(Path.GetTempPath(), $"daemon-config-{Guid.NewGuid():N}.json");
        File.WriteAllText(config, "{}");
        try
        {
            var builder = HsmVaultServer.CreateBuilder(["--config", config]);

            var files = ((IConfigurationBuilder)builder.Configuration).Sources.OfType<FileConfigurationSource>().ToList();
            Assert.Contains(files, f => f.Path == "appsettings.json");
            Assert.Contains(files, f => f.Path == Path.GetFileName(config) || f.Path == config);
            Assert.All(files, f => Assert.False(f.ReloadOnChange, $"{f.Path} reloads on change"));
        }
        finally
        {
            File.Delete(config);
        }
    }
}
