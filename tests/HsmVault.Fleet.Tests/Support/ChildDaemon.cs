using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.RegularExpressions;
using HsmVault.Testing.Daemons;

namespace HsmVault.Fleet.Tests.Support;

/// <summary>
/// A real <c>hsmvaultd</c> child process (<c>dotnet hsmvaultd.dll --config FILE</c>) with this
/// test process's SoftHSM2 environment. <see cref="KillAsync"/> is kill -9.
/// </summary>
public sealed partial class ChildDaemon : IAsyncDisposable
{
    /// <summary>How long a child may take to start or exit on a loaded machine.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromMinutes(2);

    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output = new();
    private readonly TaskCompletionSource _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Action<string>? _onLine;
    private int _openStreams = 2;

    private ChildDaemon(Process process, Action<string>? onLine)
    {
        _process = process;
        _onLine = onLine;
        _process.OutputDataReceived += (_, e) => OnLine(e.Data);
        _process.ErrorDataReceived += (_, e) => OnLine(e.Data);
    }

    /// <summary>Path of hsmvaultd.dll in the daemon project's output folder.</summary>
    public static string DaemonDll => ChildProcessStart.BuiltPath(typeof(ChildDaemon).Assembly, "HsmVaultDaemonPath");

    /// <summary>Everything the daemon printed so far, one line each.</summary>
    public string Output => string.Join('\n', _output);

    /// <summary>Whether the process has ended.</summary>
    public bool HasExited => _process.HasExited;

    /// <summary>The exit code, once the process has ended.</summary>
    public int ExitCode => _process.ExitCode;

    /// <summary>Starts the daemon; with <paramref name="waitUntilListening"/>, returns once it logs that it listens.</summary>
    /// <param name="configFile">The daemon's JSON configuration.</param>
    /// <param name="environment">Extra environment variables (HSMVAULT_FAULT_POINT, ...).</param>
    /// <param name="onLine">Called with every line the daemon prints.</param>
    /// <param name="waitUntilListening">Whether to wait for the "listening on" line.</param>
    public static async Task<ChildDaemon> StartAsync(
        string configFile,
        IReadOnlyDictionary<string, string>? environment = null,
        Action<string>? onLine = null,
        bool waitUntilListening = true)
    {
        var start = ChildProcessStart.For(DaemonDll, ["--config", configFile], environment);
        var daemon = new ChildDaemon(new Process { StartInfo = start }, onLine);
        daemon._process.Start();
        daemon._process.StandardInput.Close();
        daemon._process.BeginOutputReadLine();
        daemon._process.BeginErrorReadLine();
        if (waitUntilListening)
        {
            var ready = await Task.WhenAny(daemon._listening.Task, daemon._exited.Task, Task.Delay(Timeout));
            if (ready != daemon._listening.Task)
            {
                var output = daemon.Output;
                await daemon.DisposeAsync();
                throw new InvalidOperationException($"hsmvaultd did not start listening:\n{output}");
            }
        }

        return daemon;
    }

    /// <summary>Waits for the process to end (all output read) and returns its exit code.</summary>
    public async Task<int> WaitForExitAsync()
    {
        await _exited.Task.WaitAsync(Timeout);
        await _process.WaitForExitAsync();
        return _process.ExitCode;
    }

    /// <summary>kill -9 of the daemon, then waits until it is gone.</summary>
    public async Task KillAsync()
    {
        try
        {
            _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }

        await WaitForExitAsync();
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            await KillAsync();
        }

        _process.Dispose();
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            if (Interlocked.Decrement(ref _openStreams) == 0)
            {
                _exited.TrySetResult();
            }

            return;
        }

        _output.Enqueue(line);
        _onLine?.Invoke(line);
        if (ListeningLine().IsMatch(line))
        {
            _listening.TrySetResult();
        }
    }

    [GeneratedRegex(@"hsmvaultd \S+ listening on https?://", RegexOptions.CultureInvariant)]
    private static partial Regex ListeningLine();
}
