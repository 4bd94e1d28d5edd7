namespace HsmVault.Cli;

/// <summary>Files that hold keys: created readable and writable by their owner only (0600).</summary>
internal static class PrivateFiles
{
    public static FileStream Create(string path, FileMode mode)
    {
        var options = new FileStreamOptions { Mode = mode, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        return new FileStream(path, options);
    }
}
