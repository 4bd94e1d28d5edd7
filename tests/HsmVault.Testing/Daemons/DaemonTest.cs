using Xunit;

namespace HsmVault.Testing.Daemons;

/// <summary>
/// Base of tests that each get a fresh in-process daemon (xunit makes one instance per
/// test). After the test the daemon is stopped and its logs checked: an unexpected error
/// or a leaked secret fails the test.
/// </summary>
public abstract class DaemonTest : IAsyncLifetime
{
    /// <summary>This test's daemon.</summary>
    protected TestDaemon Daemon { get; private set; } = null!;

    /// <summary>This test's daemon's token, keys and folders.</summary>
    protected DaemonSetup Setup => Daemon.Setup;

    /// <summary>Changes to the daemon's configuration, for tests that need them.</summary>
    protected virtual void Configure(Dictionary<string, string?> settings)
    {
    }

    /// <inheritdoc/>
    public async Task InitializeAsync()
    {
        Daemon = await TestDaemon.StartAsync(Configure);
        await OnStartedAsync();
    }

    /// <summary>Set-up that needs the running daemon (registering users, ...).</summary>
    protected virtual Task OnStartedAsync() => Task.CompletedTask;

    /// <inheritdoc/>
    public async Task DisposeAsync()
    {
        if (Daemon is null)
        {
            return;
        }

        await Daemon.DisposeAsync();
        Daemon.AssertCleanLogs();
    }
}
