using System.Diagnostics;

namespace HsmVault.Containers.Tests.Support;

/// <summary>Result of one <c>docker</c> command.</summary>
public sealed record DockerResult(int ExitCode, string Output, string Error);

/// <summary>
/// The <c>docker</c> command, for what Testcontainers has no call for: one-shot containers that
/// run to their exit (the key ceremony, volume copies), <c>docker kill</c>, disconnecting a
/// container from a network, and removing leftovers by label.
/// </summary>
public static class DockerCli
{
    /// <summary>Runs <c>docker</c> with <paramref name="arguments"/>; throws when it fails.</summary>
    public static async Task<string> RunAsync(params string[] arguments)
    {
        var result = await TryRunAsync(arguments);
        return result.ExitCode == 0
            ? result.Output
            : throw new InvalidOperationException($"docker {string.Join(' ', arguments)} failed ({result.ExitCode}): {result.Error.Trim()}");
    }

    /// <summary>Runs <c>docker</c> with <paramref name="arguments"/> and returns what happened.</summary>
    public static async Task<DockerResult> TryRunAsync(params string[] arguments)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        var start = new ProcessStartInfo("docker")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException("could not start docker");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        // Generous: only there so that a wedged engine fails the test instead of hanging it.
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        await process.WaitForExitAsync(timeout.Token);
        return new DockerResult(process.ExitCode, await output, await error);
    }

    /// <summary>
    /// Removes every container, volume and network labelled <paramref name="label"/> (key=value):
    /// containers first (a volume or network in use cannot go), paused ones included.
    /// </summary>
    public static async Task RemoveLabelledAsync(string label)
    {
        var containers = Lines(await RunAsync("ps", "-aq", "--filter", $"label={label}"));
        if (containers.Length > 0)
        {
            await RunAsync(["rm", "-f", "-v", .. containers]);
        }

        var volumes = Lines(await RunAsync("volume", "ls", "-q", "--filter", $"label={label}"));
        if (volumes.Length > 0)
        {
            await RunAsync(["volume", "rm", "-f", .. volumes]);
        }

        var networks = Lines(await RunAsync("network", "ls", "-q", "--filter", $"label={label}"));
        if (networks.Length > 0)
        {
            await RunAsync(["network", "rm", .. networks]);
        }
    }

    /// <summary>How many containers, volumes and networks carry <paramref name="label"/>.</summary>
    public static async Task<int> CountLabelledAsync(string label) =>
        Lines(await RunAsync("ps", "-aq", "--filter", $"label={label}")).Length
        + Lines(await RunAsync("volume", "ls", "-q", "--filter", $"label={label}")).Length
        + Lines(await RunAsync("network", "ls", "-q", "--filter", $"label={label}")).Length;

    private static string[] Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}
