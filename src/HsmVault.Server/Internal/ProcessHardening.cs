using System.Runtime.Versioning;
using Microsoft.Extensions.Logging;

namespace HsmVault.Server.Internal;

/// <summary>
/// Start-up rules on the daemon's files and process: the data folder is the daemon's alone
/// (0700), everything the daemon writes is 0600 (umask 077), no core dumps, memory locked.
/// </summary>
internal static partial class ProcessHardening
{
    /// <summary>The file-creation mask: nothing the daemon creates is readable by group or others.</summary>
    private const uint Umask = 0b000_111_111;

    private const UnixFileMode GroupOrOther =
        UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute |
        UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    /// <summary>
    /// Creates the data folder 0700, or checks an existing one: group or world access is removed
    /// (from the folder and everything in it, as an older version left files 0644) with a
    /// warning, and a folder whose access cannot be fixed is refused.
    /// </summary>
    /// <exception cref="StartupRefusedException">The folder is open to others and cannot be fixed.</exception>
    public static void SecureDataDirectory(string dataDirectory, ILogger logger)
    {
        if (OperatingSystem.IsWindows() || string.IsNullOrEmpty(dataDirectory))
        {
            // An empty setting is the vault options' own error, reported with theirs.
            return;
        }

        var path = Path.GetFullPath(dataDirectory);
        if (!Directory.Exists(path))
        {
            Directory.CreateDirectory(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            return;
        }

        var fixedEntries = 0;
        try
        {
            fixedEntries += Tighten(path) ? 1 : 0;
            foreach (var entry in Directory.EnumerateFileSystemEntries(path, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 }))
            {
                fixedEntries += Tighten(entry) ? 1 : 0;
            }
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            throw new StartupRefusedException(
                $"data folder '{path}' is open to other users and cannot be made private: {e.Message}; " +
                "make it owned by the daemon's user with mode 0700 (chown, chmod 700)", e);
        }

        if (fixedEntries > 0)
        {
            Log.DataDirectoryFixed(logger, path, fixedEntries);
        }
    }

    /// <summary>
    /// Process-wide settings, for the daemon executable only (an in-process host, such as a test
    /// runner, keeps its own): umask 077, core dumps off, memory locked, as configured.
    /// </summary>
    /// <exception cref="StartupRefusedException">Memory locking is required and the system refuses it.</exception>
    public static void HardenProcess(ProcessOptions options, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!OperatingSystem.IsLinux())
        {
            Log.NotLinux(logger);
            return;
        }

        NativeProcess.SetUmask(Umask);
        if (options.DisableCoreDumps)
        {
            var errno = NativeProcess.DisableCoreDumps();
            if (errno != 0)
            {
                Log.CoreDumpsNotDisabled(logger, NativeProcess.Describe(errno));
            }
        }
        else
        {
            Log.CoreDumpsAllowed(logger);
        }

        if (options.LockMemory != MemoryLocking.Off)
        {
            var errno = NativeProcess.LockAllMemory();
            if (errno != 0)
            {
                var why = $"cannot lock the daemon's memory (mlockall: {NativeProcess.Describe(errno)}); grant CAP_IPC_LOCK " +
                    "or raise RLIMIT_MEMLOCK to unlimited (systemd: LimitMEMLOCK=infinity), or set HsmVault:Process:LockMemory to Off";
                if (options.LockMemory == MemoryLocking.Required)
                {
                    throw new StartupRefusedException(why);
                }

                Log.MemoryNotLocked(logger, why);
            }
        }
    }

    /// <summary>Removes group and other access from <paramref name="path"/>; whether there was any.</summary>
    [UnsupportedOSPlatform("windows")]
    private static bool Tighten(string path)
    {
        var mode = File.GetUnixFileMode(path);
        if ((mode & GroupOrOther) == 0)
        {
            return false;
        }

        File.SetUnixFileMode(path, mode & ~GroupOrOther);
        return true;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1400, EventName = "DataFolderAccessFixed", Level = LogLevel.Warning,
            Message = "Data folder '{Path}' was open to other users; removed group and other access from {Count} entries")]
        public static partial void DataDirectoryFixed(ILogger logger, string path, int count);

        [LoggerMessage(EventId = 1401, EventName = "CoreDumpsNotDisabled", Level = LogLevel.Warning, Message = "Core dumps could not be turned off: {Reason}")]
        public static partial void CoreDumpsNotDisabled(ILogger logger, string reason);

        [LoggerMessage(EventId = 1402, EventName = "CoreDumpsAllowed", Level = LogLevel.Warning,
            Message = "Core dumps are allowed (HsmVault:Process:DisableCoreDumps is false): a core file would hold the unsealed server key")]
        public static partial void CoreDumpsAllowed(ILogger logger);

        [LoggerMessage(EventId = 1403, EventName = "MemoryNotLocked", Level = LogLevel.Warning, Message = "Memory is not locked: {Reason}")]
        public static partial void MemoryNotLocked(ILogger logger, string reason);

        [LoggerMessage(EventId = 1404, EventName = "ProcessHardeningNotApplied", Level = LogLevel.Warning,
            Message = "Not on Linux: umask, core dump and memory locking settings are not applied")]
        public static partial void NotLinux(ILogger logger);
    }
}
