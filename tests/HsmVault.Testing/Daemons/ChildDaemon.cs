using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace HsmVault.Testing.Daemons;

/// <summary>
/// A real daemon child process (<c>dotnet hsmvaultd.dll --config FILE</c>, or hsmvault-witness)
/// with this test process's SoftHSM2 environment. <c>StartAsync</c> returns once the daemon logs
/// where it listens; <see cref="KillAsync"/> is kill -9, <see cref="TerminateAsync"/> SIGTERM.
/// </summary>
public sealed partial class ChildDaemon : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<(bool IsError, string Line)> _output = new();
    private readonly TaskCompletionSource<Uri> _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Action<string>? _onLine;
    private int _openStreams = 2;

    private ChildDaemon(Process process, Action<string>? onLine)
    {
        _process = process;
        _onLine = onLine;
        _process.OutputDataReceived += (_, e) => OnLine(e.Data, isError: false);
        _process.ErrorDataReceived += (_, e) => OnLine(e.Data, isError: true);
    }

    /// <summary>Where the daemon listens (the first address it announced: hsmvaultd's client endpoint).</summary>
    public Uri Address => _listening.Task.IsCompletedSuccessfully ? _listening.Task.Result : throw new InvalidOperationException("the daemon is not listening");

    /// <summary>Everything the daemon printed so far (stdout and stderr, interleaved, one line each).</summary>
    public string Output => string.Join('\n', _output.Select(o => o.Line));

    /// <summary>What the daemon printed on stdout so far.</summary>
    public string StandardOutput => string.Join('\n', _output.Where(o => !o.IsError).Select(o => o.Line));

    /// <summary>What the daemon printed on stderr so far.</summary>
    public string StandardError => string.Join('\n', _output.Where(o => o.IsError).Select(o => o.Line));

    /// <summary>The process id (of the runtime hosting the daemon, which <c>dotnet</c> runs in its own process).</summary>
    public int Id => _process.Id;

    /// <summary>Whether the process has ended.</summary>
    public bool HasExited => _process.HasExited;

    /// <summary>The exit code, once the process has ended.</summary>
    public int ExitCode => _process.ExitCode;

    /// <summary>Starts <c>dotnet hsmvaultd.dll --config FILE</c>.</summary>
    /// <param name="configFile">The daemon's JSON configuration.</param>
    /// <param name="environment">Extra environment variables (HSMVAULT_FAULT_POINT, ...).</param>
    /// <param name="onLine">Called with every line the daemon prints.</param>
    /// <param name="waitUntilListening">Whether to wait for the "listening on" log line.</param>
    public static Task<ChildDaemon> StartAsync(
        string configFile,
        IReadOnlyDictionary<string, string>? environment = null,
        Action<string>? onLine = null,
        bool waitUntilListening = true) =>
        StartAsync(ChildProcesses.StartInfo(ChildProcesses.DaemonDll, ["--config", configFile], environment), onLine, waitUntilListening);

    /// <summary>Starts <c>dotnet hsmvault-witness.dll --config FILE</c>.</summary>
    /// <param name="configFile">The witness's JSON configuration.</param>
    public static Task<ChildDaemon> StartWitnessAsync(string configFile) =>
        StartAsync(ChildProcesses.StartInfo(ChildProcesses.WitnessDaemonDll, ["--config", configFile]));

    /// <summary>Starts a daemon from a start description (another executable, or one run under a wrapper command).</summary>
    /// <param name="startInfo">What to run, e.g. from <see cref="ChildProcesses.StartInfo"/>; its standard streams are redirected.</param>
    /// <param name="onLine">Called with every line the daemon prints.</param>
    /// <param name="waitUntilListening">Whether to wait for the "listening on" log line.</param>
    public static async Task<ChildDaemon> StartAsync(ProcessStartInfo startInfo, Action<string>? onLine = null, bool waitUntilListening = true)
    {
        ArgumentNullException.ThrowIfNull(startInfo);
        var daemon = new ChildDaemon(new Process { StartInfo = startInfo }, onLine);
        daemon._process.Start();
        daemon._process.StandardInput.Close();
        daemon._process.BeginOutputReadLine();
        daemon._process.BeginErrorReadLine();
        if (waitUntilListening)
        {
            var ready = await Task.WhenAny(daemon._listening.Task, daemon._exited.Task, Task.Delay(ChildProcesses.Timeout));
            if (ready != daemon._listening.Task)
            {
                var output = daemon.Output;
                await daemon.DisposeAsync();
                throw new InvalidOperationException($"the daemon exited, or did not start listening within {ChildProcesses.Timeout}:\n{output}");
            }
        }

        return daemon;
    }

    /// <summary>Waits for the process to end (all output read) and returns its exit code.</summary>
    public async Task<int> WaitForExitAsync()
    {
        await _exited.Task.WaitAsync(ChildProcesses.Timeout);
        await _process.WaitForExitAsync();
        return _process.ExitCode;
    }

    /// <summary>kill -9 of the daemon (and anything it started), then waits for it to be gone.</summary>
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

    /// <summary>SIGTERM, as systemd or docker stop sends; returns the exit code.</summary>
    public async Task<int> TerminateAsync()
    {
        using (var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(CultureInfo.InvariantCulture)]))
        {
            await kill.WaitForExitAsync();
        }

        return await WaitForExitAsync();
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

    private void OnLine(string? line, bool isError)
    {
        if (line is null)
        {
            if (Interlocked.Decrement(ref _openStreams) == 0)
            {
                _exited.TrySetResult();
            }

            return;
        }

        _output.Enqueue((isError, line));
        _onLine?.Invoke(line);
        if (ListeningLine().Match(line) is { Success: true } match)
        {
            _listening.TrySetResult(new Uri(match.Groups["address"].Value));
        }
    }

    /// <summary>The start-up announcement of hsmvaultd and of the witness; the first address is the one clients use.</summary>
    [GeneratedRegex(@"(?:hsmvaultd|hsmvault-witness) \S+ listening on (?<address>https?://[^\s,;]+)", RegexOptions.CultureInvariant)]
    private static partial Regex ListeningLine();
}
