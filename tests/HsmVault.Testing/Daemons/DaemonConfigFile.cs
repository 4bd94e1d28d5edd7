using System.Text.Json;
using System.Text.Json.Nodes;

namespace HsmVault.Testing.Daemons;

/// <summary>A daemon's configuration as the JSON file an operator would write.</summary>
public static class DaemonConfigFile
{
    /// <summary>
    /// Writes flat configuration keys (<c>HsmVault:Token:PinFile</c>) as nested JSON at
    /// <paramref name="path"/>; null values are left out, and numbered keys become objects,
    /// which configuration binds as lists. Returns the path.
    /// </summary>
    public static string Write(IReadOnlyDictionary<string, string?> settings, string path)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var root = new JsonObject();
        foreach (var (key, value) in settings)
        {
            if (value is null)
            {
                continue;
            }

            var parts = key.Split(':');
            var node = root;
            foreach (var part in parts[..^1])
            {
                if (node[part] is not JsonObject child)
                {
                    child = [];
                    node[part] = child;
                }

                node = child;
            }

            node[parts[^1]] = value;
        }

        File.WriteAllText(path, root.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return path;
    }
}
