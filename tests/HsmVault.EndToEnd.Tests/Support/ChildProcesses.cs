using System.Collections.Concurrent;
using System.Diagnostics;
using HsmVault.Testing.Daemons;

namespace HsmVault.EndToEnd.Tests.Support;

/// <summary>What a finished child process printed and returned.</summary>
public sealed record ProcessResult(int ExitCode, string StandardOutput, string StandardError)
{
    /// <summary>Both streams, for searching.</summary>
    public string AllOutput => StandardOutput + "\n" + StandardError;
}

/// <summary>Starts the project's executables (hsmvaultd, hsmvault) with <c>dotnet</c>.</summary>
public static class ChildProcesses
{
    /// <summary>Generous: the machine running the suite may be a loaded 2-core box.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);

    /// <summary>Path of hsmvaultd.dll in the daemon project's own output folder.</summary>
    public static string DaemonDll => BuiltPath("HsmVaultDaemonPath");

    /// <summary>Path of hsmvault.dll (the CLI) in its project's own output folder.</summary>
    public static string CliDll => BuiltPath("HsmVaultCliPath");

    /// <summary>
    /// A start description for <c>dotnet DLL args</c>, with the SoftHSM2 environment of this
    /// test process and no inherited <c>HSMVAULT_*</c> variables.
    /// </summary>
    public static ProcessStartInfo StartInfo(string dll, IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null) =>
        ChildProcessStart.For(dll, arguments, environment);

    /// <summary>Runs <paramref name="dll"/> to completion and returns what it printed.</summary>
    public static async Task<ProcessResult> RunAsync(string dll, IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null)
    {
        using var process = Process.Start(StartInfo(dll, arguments, environment))
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
            throw new TimeoutException($"{Path.GetFileName(dll)} {string.Join(' ', arguments)} did not exit within {Timeout}");
        }

        return new ProcessResult(process.ExitCode, await stdout, await stderr);
    }

    private static string BuiltPath(string key) => ChildProcessStart.BuiltPath(typeof(ChildProcesses).Assembly, key);
}

/// <summary>
/// A real hsmvaultd child process, started with a JSON config file and the test process's
/// SoftHSM2 environment. <c>StartAsync</c> returns once the daemon logs that it is
/// listening; <see cref="KillAsync"/> is kill -9.
/// </summary>
public sealed class DaemonProcess : IAsyncDisposable
{
    private static readonly System.Text.RegularExpressions.Regex ListeningLine =
        new(@"listening on (?<address>http://[^\s,]+)", System.Text.RegularExpressions.RegexOptions.CultureInvariant);

    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output = new();
    private readonly TaskCompletionSource<Uri> _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _openStreams = 2;

    private DaemonProcess(Process process)
    {
        _process = process;
        _process.OutputDataReceived += (_, e) => OnLine(e.Data, "out");
        _process.ErrorDataReceived += (_, e) => OnLine(e.Data, "err");
    }

    /// <summary>Where the daemon listens.</summary>
    public Uri Address => _listening.Task.IsCompletedSuccessfully ? _listening.Task.Result : throw new InvalidOperationException("the daemon is not listening");

    /// <summary>Everything the daemon printed so far (stdout and stderr, interleaved, one line each).</summary>
    public string Output => string.Join('\n', _output);

    /// <summary>The process id (of the runtime hosting hsmvaultd, which <c>dotnet</c> runs in its own process).</summary>
    public int Id => _process.Id;

    /// <summary>Whether the process has ended.</summary>
    public bool HasExited => _process.HasExited;

    /// <summary>Starts <c>dotnet hsmvaultd.dll --config FILE</c>.</summary>
    /// <param name="configFile">The daemon's JSON configuration.</param>
    /// <param name="environment">Extra environment variables (e.g. HSMVAULT_FAULT_POINT).</param>
    /// <param name="waitUntilListening">Whether to wait for the "listening on" log line.</param>
    public static Task<DaemonProcess> StartAsync(string configFile, IReadOnlyDictionary<string, string>? environment = null, bool waitUntilListening = true) =>
        StartAsync(ChildProcesses.StartInfo(ChildProcesses.DaemonDll, ["--config", configFile], environment), waitUntilListening);

    /// <summary>Starts the daemon from a start description (e.g. <see cref="ChildProcesses.StartInfo"/> run under a wrapper command).</summary>
    /// <param name="startInfo">What to run; its standard streams are redirected.</param>
    /// <param name="waitUntilListening">Whether to wait for the "listening on" log line.</param>
    public static async Task<DaemonProcess> StartAsync(ProcessStartInfo startInfo, bool waitUntilListening = true)
    {
        ArgumentNullException.ThrowIfNull(startInfo);
        var process = new Process { StartInfo = startInfo };
        var daemon = new DaemonProcess(process);
        process.Start();
        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (waitUntilListening)
        {
            var ready = await Task.WhenAny(daemon._listening.Task, daemon._exited.Task).WaitAsync(ChildProcesses.Timeout);
            if (ready != daemon._listening.Task)
            {
                var output = daemon.Output;
                await daemon.DisposeAsync();
                throw new InvalidOperationException($"hsmvaultd exited before listening:\n{output}");
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
        using (var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
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

    private void OnLine(string? line, string stream)
    {
        if (line is null)
        {
            if (Interlocked.Decrement(ref _openStreams) == 0)
            {
                _exited.TrySetResult();
            }

            return;
        }

        _output.Enqueue(stream + ": " + line);
        var match = ListeningLine.Match(line);
        if (match.Success)
        {
            _listening.TrySetResult(new Uri(match.Groups["address"].Value));
        }
    }
}
