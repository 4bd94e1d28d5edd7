using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace HsmVault.Server.Bundles;

/// <summary>
/// Looks at the bundle file every <see cref="BundleOptions.ReloadInterval"/>, so an operator who
/// publishes a new epoch (or renews the not-after) only replaces the file. A poll of one file's
/// timestamp, rather than a file watcher: watchers wake the daemon on every write beside it.
/// </summary>
internal sealed class BundleFileReloader(ServedBundle served, IOptions<BundleOptions> options, TimeProvider time) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (string.IsNullOrEmpty(options.Value.File) && string.IsNullOrEmpty(options.Value.SuccessorFile))
        {
            return;
        }

        using var timer = new PeriodicTimer(options.Value.ReloadInterval, time);
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
        {
            served.ReloadIfChanged();
            served.ReloadSuccessorIfChanged();
        }
    }
}
