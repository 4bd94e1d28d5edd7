using System.Diagnostics;

namespace HsmVault.Containers.Tests.Support;

/// <summary>
/// The Docker engine and the hsmvaultd image, shared by every container test: starts dockerd
/// when it is not running and builds the image when it is missing (both through the scripts
/// `make image` runs), and removes whatever an earlier, interrupted run left behind.
/// </summary>
public sealed class DockerEngine : IAsyncLifetime
{
    /// <summary>Every container, volume and network the tests make carries this label (key=value).</summary>
    public const string Label = "hsmvault.tests=containers";

    /// <summary>Creates the fixture; Testcontainers reads its settings from the environment once, so they are set first.</summary>
    public DockerEngine()
    {
        // The engine Debian 12 ships (20.10) speaks API 1.41, older than the client's default;
        // and Ryuk, Testcontainers' reaper, is an image from a registry that cannot be reached
        // (cleanup is by label instead, here and in each fleet).
        SetIfUnset("DOCKER_API_VERSION", "1.41");
        SetIfUnset("TESTCONTAINERS_RYUK_DISABLED", "true");
        Image = Environment.GetEnvironmentVariable("HSMVAULT_IMAGE") is { Length: > 0 } image ? image : "hsmvault:dev";
    }

    /// <summary>The image the members run.</summary>
    public string Image { get; }

    /// <inheritdoc/>
    public async Task InitializeAsync()
    {
        var root = RepositoryRoot();
        await RunScriptAsync(Path.Combine(root, "docker", "dockerd.sh"));
        if ((await DockerCli.TryRunAsync("image", "inspect", Image)).ExitCode != 0)
        {
            await RunScriptAsync(Path.Combine(root, "docker", "build-image.sh"), Image);
        }

        await DockerCli.RemoveLabelledAsync(Label);
    }

    /// <inheritdoc/>
    public async Task DisposeAsync()
    {
        await DockerCli.RemoveLabelledAsync(Label);
        var left = await DockerCli.CountLabelledAsync(Label);
        Assert.True(left == 0, $"{left} containers, volumes or networks labelled {Label} are left");
    }

    private static void SetIfUnset(string name, string value)
    {
        if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable(name)))
        {
            Environment.SetEnvironmentVariable(name, value);
        }
    }

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "HsmVault.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException($"no HsmVault.sln above {AppContext.BaseDirectory}");
    }

    private static async Task RunScriptAsync(string script, params string[] arguments)
    {
        var start = new ProcessStartInfo(script) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {script}");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{script} failed ({process.ExitCode}):\n{await output}\n{await error}");
        }
    }
}

/// <summary>The container tests share one engine and run one after another (2 cores, real fleets).</summary>
[CollectionDefinition(Name)]
public sealed class ContainersGroup : ICollectionFixture<DockerEngine>
{
    /// <summary>The collection's name.</summary>
    public const string Name = "containers";
}
