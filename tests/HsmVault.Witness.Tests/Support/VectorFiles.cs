namespace HsmVault.Witness.Tests.Support;

/// <summary>
/// Where the shared RFC 9162 vectors are: <c>&lt;repository&gt;/../shared/vectors/rfc9162-merkle</c>
/// (CI clones the repository next to a copy of shared/). Missing vectors fail the tests loudly.
/// </summary>
public static class VectorFiles
{
    /// <summary>The vector folder; throws if it is not there.</summary>
    public static string MerkleDirectory
    {
        get
        {
            var root = RepositoryRoot();
            var directory = Path.GetFullPath(Path.Combine(root, "..", "shared", "vectors", "rfc9162-merkle"));
            return Directory.Exists(Path.Combine(directory, "inclusion")) && Directory.Exists(Path.Combine(directory, "consistency"))
                ? directory
                : throw new DirectoryNotFoundException(
                    $"the RFC 9162 vectors are missing: expected '{directory}' (with inclusion/ and consistency/) next to the repository '{root}'");
        }
    }

    /// <summary>Every vector file, relative to <see cref="MerkleDirectory"/>, in a stable order.</summary>
    public static IEnumerable<string> All()
    {
        var directory = MerkleDirectory;
        return Directory.EnumerateFiles(directory, "*.json", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(directory, f))
            .Order(StringComparer.Ordinal);
    }

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "HsmVault.sln")))
            {
                return directory.FullName;
            }
        }

        throw new DirectoryNotFoundException($"no HsmVault.sln above '{AppContext.BaseDirectory}': cannot find the repository root");
    }
}
