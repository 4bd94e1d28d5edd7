using System.Security.Cryptography;
using System.Text;

namespace HsmVault.Evidence;

/// <summary>
/// The hash of a published daemon folder (<c>dotnet publish src/HsmVault.Daemon -c Release -o DIR</c>),
/// defined so that coreutils reproduce it:
/// <code>cd DIR &amp;&amp; find . -type f -printf '%P\n' | LC_ALL=C sort | xargs -d '\n' sha256sum | sha256sum</code>
/// That is: every regular file under the folder, by its path relative to the folder with '/'
/// separators, sorted by the bytes of its UTF-8 path; one line per file, <c>hex(SHA-256(file))</c>,
/// two spaces, the path, a newline; the hash is SHA-256 of those lines. A path holding a newline or
/// a backslash is refused (sha256sum would escape it), and so is a symbolic link (a build is files).
/// </summary>
public static class DaemonBuildHash
{
    /// <summary>Hashes the folder.</summary>
    /// <exception cref="IOException">The folder is missing or holds a link or a name the rule cannot carry.</exception>
    public static DaemonBuild Compute(string directory)
    {
        var root = new DirectoryInfo(Path.GetFullPath(directory));
        if (!root.Exists)
        {
            throw new DirectoryNotFoundException($"daemon build folder '{directory}' does not exist");
        }

        var files = new List<(byte[] Path, FileInfo File)>();
        foreach (var entry in root.EnumerateFileSystemInfos("*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 }))
        {
            var relative = Path.GetRelativePath(root.FullName, entry.FullName).Replace(Path.DirectorySeparatorChar, '/');
            if (entry.LinkTarget is not null)
            {
                throw new IOException($"daemon build folder holds a symbolic link '{relative}'; hash a published folder of plain files");
            }

            if (entry is not FileInfo file)
            {
                continue;
            }

            if (relative.Contains('\n', StringComparison.Ordinal) || relative.Contains('\\', StringComparison.Ordinal))
            {
                throw new IOException($"daemon build folder holds a file whose name has a newline or a backslash: '{relative}'");
            }

            files.Add((Encoding.UTF8.GetBytes(relative), file));
        }

        files.Sort((a, b) => a.Path.AsSpan().SequenceCompareTo(b.Path));
        using var lines = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var (path, file) in files)
        {
            using var stream = file.OpenRead();
            lines.AppendData(Encoding.ASCII.GetBytes(Convert.ToHexStringLower(SHA256.HashData(stream)) + "  "));
            lines.AppendData(path);
            lines.AppendData("\n"u8);
        }

        return new DaemonBuild(lines.GetHashAndReset(), (ulong)files.Count);
    }
}
