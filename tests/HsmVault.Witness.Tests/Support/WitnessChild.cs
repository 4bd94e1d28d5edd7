using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.RegularExpressions;
using HsmVault.Testing.Daemons;

namespace HsmVault.Witness.Tests.Support;

/// <summary>
/// A real <c>hsmvault-witness</c> child process (<c>dotnet hsmvault-witness.dll --config FILE</c>)
/// with this test process's SoftHSM2 environment. <see cref="KillAsync"/> is kill -9.
/// </summary>
public sealed partial class WitnessChild : IAsyncDisposable
{
    /// <summary>How long a child may take to start or exit on a loaded machine (a hang guard, not an assertion).</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);

    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output = new();
    private readonly TaskCompletionSource<Uri> _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _openStreams = 2;

    private WitnessChild(Process process)
    {
        _process = process;
        _process.OutputDataReceived += (_, e) => OnLine(e.Data);
        _process.ErrorDataReceived += (_, e) => OnLine(e.Data);
    }

    /// <summary>Path of hsmvault-witness.dll in the daemon project's output folder.</summary>
    public static string DaemonDll => ChildProcessStart.BuiltPath(typeof(WitnessChild).Assembly, "HsmVaultWitnessDaemonPath");

    /// <summary>Where it listens, once it said so.</summary>
    public Uri Address => _listening.Task.Result;

    /// <summary>Everything it printed so far.</summary>
    public string Output => string.Join('\n', _output);

    /// <summary>Starts the witness and returns once it logs where it listens.</summary>
    public static async Task<WitnessChild> StartAsync(string configFile)
    {
        var start = ChildProcessStart.For(DaemonDll, ["--config", configFile]);
        var child = new WitnessChild(new Process { StartInfo = start });
        child._process.Start();
        child._process.StandardInput.Close();
        child._process.BeginOutputReadLine();
        child._process.BeginErrorReadLine();
        var ready = await Task.WhenAny(child._listening.Task, child._exited.Task, Task.Delay(Timeout));
        if (ready != child._listening.Task)
        {
            var output = child.Output;
            await child.DisposeAsync();
            throw new InvalidOperationException($"hsmvault-witness did not start listening:\n{output}");
        }

        return child;
    }

    /// <summary>kill -9, then waits until it is gone.</summary>
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

        await _exited.Task.WaitAsync(Timeout);
        await _process.WaitForExitAsync();
    }

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
        if (ListeningLine().Match(line) is { Success: true } match)
        {
            _listening.TrySetResult(new Uri(match.Groups[1].Value));
        }
    }

    [GeneratedRegex(@"hsmvault-witness \S+ listening on (https?://[^\s,]+)", RegexOptions.CultureInvariant)]
    private static partial Regex ListeningLine();
}
