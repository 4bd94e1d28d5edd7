using System.Diagnostics;
using System.Reflection;

namespace HsmVault.Testing.Daemons;

/// <summary>How tests start the project's executables (hsmvaultd, hsmvault) as child processes.</summary>
public static class ChildProcessStart
{
    /// <summary>
    /// A start description for <c>dotnet DLL args</c> with this test process's SoftHSM2
    /// environment, no inherited <c>HSMVAULT_*</c> variables, plain single-line console logs
    /// (easy to search), then <paramref name="environment"/>.
    /// </summary>
    public static ProcessStartInfo For(string dll, IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null)
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

    /// <summary>
    /// The path of a built executable that a test project records as assembly metadata
    /// (<paramref name="key"/>, e.g. <c>HsmVaultDaemonPath</c>), so it holds for any configuration.
    /// </summary>
    public static string BuiltPath(Assembly testAssembly, string key)
    {
        ArgumentNullException.ThrowIfNull(testAssembly);
        var path = testAssembly.GetCustomAttributes<AssemblyMetadataAttribute>().SingleOrDefault(a => a.Key == key)?.Value;
        return !string.IsNullOrEmpty(path) && File.Exists(path)
            ? path
            : throw new InvalidOperationException($"{key} '{path}' does not exist: build the test project (it builds the executables too)");
    }

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
