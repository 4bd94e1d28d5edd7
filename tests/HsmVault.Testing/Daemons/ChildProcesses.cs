using System.Collections.Concurrent;
using System.Diagnostics;
using System.Reflection;

namespace HsmVault.Testing.Daemons;

/// <summary>What a finished child process printed and returned.</summary>
public sealed record ProcessResult(int ExitCode, string StandardOutput, string StandardError)
{
    /// <summary>Both streams, for searching.</summary>
    public string AllOutput => StandardOutput + "\n" + StandardError;
}

/// <summary>How tests run the project's executables (hsmvaultd, hsmvault, hsmvault-witness) as child processes.</summary>
public static class ChildProcesses
{
    /// <summary>How long a child may take to start or exit: generous, for a loaded 2-core machine (a hang guard, not an assertion).</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);

    private static readonly ConcurrentDictionary<string, string> BuiltPaths = new(StringComparer.Ordinal);

    /// <summary>Path of hsmvaultd.dll in the daemon project's own output folder.</summary>
    public static string DaemonDll => BuiltPath("HsmVaultDaemonPath");

    /// <summary>Path of hsmvault.dll (the CLI) in its project's own output folder.</summary>
    public static string CliDll => BuiltPath("HsmVaultCliPath");

    /// <summary>Path of hsmvault-witness.dll in the witness daemon project's own output folder.</summary>
    public static string WitnessDaemonDll => BuiltPath("HsmVaultWitnessDaemonPath");

    /// <summary>
    /// A start description for <c>dotnet DLL args</c> with this test process's SoftHSM2
    /// environment, no inherited <c>HSMVAULT_*</c> variables, plain single-line console logs
    /// (easy to search), then <paramref name="environment"/>.
    /// </summary>
    public static ProcessStartInfo StartInfo(string dll, IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        var start = new ProcessStartInfo(DotnetHost())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetDirectoryName(dll)!,
        };
        start.ArgumentList.Add(dll);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("HSMVAULT_", StringComparison.OrdinalIgnoreCase)).ToList())
        {
            start.Environment.Remove(name);
        }

        foreach (var (name, value) in SoftHsmEnvironment.Shared.ChildProcessEnvironment)
        {
            start.Environment[name] = value;
        }

        start.Environment["Logging__Console__FormatterName"] = "simple";
        start.Environment["Logging__Console__FormatterOptions__SingleLine"] = "true";
        start.Environment["Logging__Console__FormatterOptions__ColorBehavior"] = "Disabled";
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }

        return start;
    }

    /// <summary>Runs <paramref name="dll"/> to completion (standard input closed) and returns what it printed.</summary>
    public static async Task<ProcessResult> RunAsync(string dll, IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null)
    {
        var argumentList = arguments.ToList();
        using var process = Process.Start(StartInfo(dll, argumentList, environment))
            ?? throw new InvalidOperationException($"cannot start {dll}");
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(Timeout);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{Path.GetFileName(dll)} {string.Join(' ', argumentList)} did not exit within {Timeout}");
        }

        return new ProcessResult(process.ExitCode, await stdout, await stderr);
    }

    /// <summary>
    /// The path of a built executable, baked into the test assembly as assembly metadata under
    /// <paramref name="key"/> by <c>tests/Directory.Build.targets</c> (a ProjectReference with
    /// <c>ChildExecutablePathKey</c>), so it holds for any configuration. The test assembly is
    /// the one loaded assembly that carries the key.
    /// </summary>
    private static string BuiltPath(string key) => BuiltPaths.GetOrAdd(key, static key =>
    {
        var path = AppDomain.CurrentDomain.GetAssemblies()
            .Where(a => !a.IsDynamic)
            .SelectMany(a => a.GetCustomAttributes<AssemblyMetadataAttribute>())
            .FirstOrDefault(a => a.Key == key)?.Value;
        return !string.IsNullOrEmpty(path) && File.Exists(path)
            ? path
            : throw new InvalidOperationException(path is null
                ? $"no test assembly records {key}: give its ProjectReference ChildExecutablePathKey=\"{key}\" (see tests/Directory.Build.targets)"
                : $"{key} '{path}' does not exist: build the test project (it builds the executables too)");
    });

    private static string DotnetHost()
    {
        var host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(host) && File.Exists(host))
        {
            return host;
        }

        var self = Environment.ProcessPath;
        return self is not null && Path.GetFileNameWithoutExtension(self) == "dotnet" ? self : "dotnet";
    }
}
