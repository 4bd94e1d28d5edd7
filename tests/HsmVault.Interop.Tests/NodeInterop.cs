using System.Diagnostics;
using System.Reflection;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace HsmVault.Interop.Tests;

/// <summary>
/// One long-lived node process running js/interop.mjs, which drives the JavaScript OPAQUE libraries.
/// Requests and replies are single JSON lines; binary fields are standard base64. Installs the npm
/// dependencies (npm ci) first when js/node_modules is missing, as on a clean clone, or no longer
/// matches js/package-lock.json, as after a pull that adds a dependency.
/// </summary>
public sealed class NodeInterop : IDisposable
{
    private static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan InstallTimeout = TimeSpan.FromMinutes(3);

    private readonly Process _node;
    private readonly StringBuilder _stderr = new();
    private readonly Lock _callLock = new();

    public NodeInterop()
    {
        var jsDirectory = JsDirectory();
        if (!InstalledAsLocked(jsDirectory))
        {
            RunToCompletion("npm", ["ci", "--no-audit", "--no-fund"], jsDirectory, InstallTimeout);
        }

        var startInfo = new ProcessStartInfo("node")
        {
            WorkingDirectory = jsDirectory,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
            StandardInputEncoding = new UTF8Encoding(false),
        };
        startInfo.ArgumentList.Add("interop.mjs");
        _node = StartOrExplain(startInfo);
        _node.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (_stderr)
                {
                    _stderr.AppendLine(e.Data);
                }
            }
        };
        _node.BeginErrorReadLine();
        Call("ping");
    }

    /// <summary>Sends one request and returns the reply; fails the test when the script reports an error.</summary>
    /// <param name="op">The operation name, e.g. "serenity.client.startLogin".</param>
    /// <param name="arguments">Name/value pairs: strings, byte arrays (sent as base64) or JSON nodes; null values are sent as JSON null.</param>
    public JsonElement Call(string op, params (string Name, object? Value)[] arguments)
    {
        var request = new JsonObject { ["op"] = op };
        foreach (var (name, value) in arguments)
        {
            request[name] = value switch
            {
                null => null,
                byte[] bytes => Convert.ToBase64String(bytes),
                string text => text,
                JsonNode node => node.DeepClone(),
                _ => throw new ArgumentException($"Unsupported argument type {value.GetType()} for {name}.", nameof(arguments)),
            };
        }

        string? line;
        lock (_callLock)
        {
            _node.StandardInput.WriteLine(request.ToJsonString());
            _node.StandardInput.Flush();
            var read = _node.StandardOutput.ReadLineAsync();
            if (!read.Wait(CallTimeout))
            {
                throw new TimeoutException($"node did not answer {op} within {CallTimeout}. stderr:\n{Stderr()}");
            }

            line = read.Result;
        }

        if (line is null)
        {
            throw new InvalidOperationException($"node exited during {op}. stderr:\n{Stderr()}");
        }

        var reply = JsonDocument.Parse(line).RootElement.Clone();
        if (!reply.GetProperty("ok").GetBoolean())
        {
            throw new InvalidOperationException($"{op} failed in node: {reply.GetProperty("error").GetString()}");
        }

        return reply;
    }

    public void Dispose()
    {
        try
        {
            _node.StandardInput.Close();
            if (!_node.WaitForExit(TimeSpan.FromSeconds(5)))
            {
                _node.Kill();
            }
        }
        finally
        {
            _node.Dispose();
        }
    }

    private string Stderr()
    {
        lock (_stderr)
        {
            return _stderr.ToString();
        }
    }

    private static string JsDirectory()
    {
        var directory = typeof(NodeInterop).Assembly
            .GetCustomAttributes<AssemblyMetadataAttribute>()
            .Single(a => a.Key == "InteropJsDirectory")
            .Value!;
        if (!File.Exists(Path.Combine(directory, "interop.mjs")))
        {
            throw new InvalidOperationException($"js/interop.mjs not found in {directory}.");
        }

        return directory;
    }

    /// <summary>
    /// Whether node_modules holds exactly the versions package-lock.json pins: npm records what it
    /// installed in node_modules/.package-lock.json, in the lockfile's own format.
    /// </summary>
    private static bool InstalledAsLocked(string jsDirectory)
    {
        var installedFile = Path.Combine(jsDirectory, "node_modules", ".package-lock.json");
        if (!File.Exists(installedFile))
        {
            return false;
        }

        var locked = PackageVersions(Path.Combine(jsDirectory, "package-lock.json"));
        var installed = PackageVersions(installedFile);
        return locked.All(package => installed.TryGetValue(package.Key, out var version) && version == package.Value);
    }

    private static Dictionary<string, string?> PackageVersions(string lockFile)
    {
        using var document = JsonDocument.Parse(File.ReadAllText(lockFile));
        return document.RootElement.GetProperty("packages").EnumerateObject()
            .Where(package => package.Name.StartsWith("node_modules/", StringComparison.Ordinal))
            .ToDictionary(
                package => package.Name,
                package => package.Value.TryGetProperty("version", out var version) ? version.GetString() : null,
                StringComparer.Ordinal);
    }

    private static Process StartOrExplain(ProcessStartInfo startInfo)
    {
        try
        {
            return Process.Start(startInfo) ?? throw new InvalidOperationException($"Could not start {startInfo.FileName}.");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException(
                $"Could not start '{startInfo.FileName}': the interop tests need Node.js 18+ and npm on PATH (e.g. apt-get install -y nodejs npm).", e);
        }
    }

    private static void RunToCompletion(string fileName, string[] arguments, string workingDirectory, TimeSpan timeout)
    {
        var startInfo = new ProcessStartInfo(fileName)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        using var process = StartOrExplain(startInfo);
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{fileName} {string.Join(' ', arguments)} did not finish within {timeout}.");
        }

        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException(
                $"{fileName} {string.Join(' ', arguments)} failed with exit code {process.ExitCode}:\n{stdout.Result}\n{stderr.Result}");
        }
    }
}

[CollectionDefinition(Name)]
public sealed class NodeInteropFixtureGroup : ICollectionFixture<NodeInterop>
{
    public const string Name = "node interop";
}
