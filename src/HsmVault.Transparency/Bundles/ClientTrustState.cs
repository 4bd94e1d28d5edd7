using System.Text.Json;
using System.Text.Json.Serialization;

namespace HsmVault.Transparency.Bundles;

/// <summary>The highest epoch a client accepted for a namespace, and that bundle's digest.</summary>
/// <param name="Epoch">The epoch.</param>
/// <param name="Digest">SHA-256 of the bundle accepted at that epoch.</param>
public sealed record AcceptedEpoch(ulong Epoch, byte[] Digest);

/// <summary>
/// What a client remembers between runs so that nobody can take it back in time: per namespace
/// the highest epoch it accepted (and that bundle's digest), per witness log the largest
/// checkpoint it verified. Kept in a small JSON file, written atomically with mode 0600.
/// </summary>
/// <remarks>
/// File format (README, "Client trust state"):
/// <code>
/// {
///   "format": "hsmvault-trust-state/1",
///   "namespaces": { "NAMESPACE": { "epoch": 3, "digest": "hex SHA-256 of the bundle" } },
///   "witnesses":  { "KEY NAME":  { "treeSize": 12, "rootHash": "base64", "checkpoint": "the signed note" } }
/// }
/// </code>
/// A missing file is an empty state (a client that has seen nothing yet). Anything else that
/// does not parse is refused: silently starting over would forget the epochs it protects.
/// </remarks>
public sealed class ClientTrustState
{
    /// <summary>The <c>format</c> value this version writes and reads.</summary>
    public const string Format = "hsmvault-trust-state/1";

    // Relaxed escaping: a person reads this file (checkpoints hold '+' and an em dash), and it is never embedded in HTML.
    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    private readonly Dictionary<string, AcceptedEpoch> _namespaces = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (ulong TreeSize, byte[] RootHash, string Note)> _checkpoints = new(StringComparer.Ordinal);

    /// <summary>The highest epoch accepted for <paramref name="ns"/>, or null.</summary>
    public AcceptedEpoch? HighestEpoch(string ns) => _namespaces.GetValueOrDefault(ns);

    /// <summary>The largest checkpoint verified from the log of <paramref name="witnessKeyName"/>, or null.</summary>
    public Notes.Checkpoint? LastCheckpoint(string witnessKeyName) =>
        _checkpoints.TryGetValue(witnessKeyName, out var c) ? new Notes.Checkpoint(witnessKeyName, c.TreeSize, c.RootHash) : null;

    /// <summary>Remembers a verified bundle: its epoch if it is the highest, and each witness's checkpoint if it is the largest.</summary>
    public void Accept(VerifiedBundle verified)
    {
        ArgumentNullException.ThrowIfNull(verified);
        var ns = verified.Bundle.Namespace;
        if (HighestEpoch(ns) is not { } highest || highest.Epoch < verified.Bundle.Epoch)
        {
            _namespaces[ns] = new AcceptedEpoch(verified.Bundle.Epoch, verified.Digest);
        }

        foreach (var (name, checkpoint, note) in verified.Checkpoints)
        {
            if (!_checkpoints.TryGetValue(name, out var known) || known.TreeSize < checkpoint.TreeSize)
            {
                _checkpoints[name] = (checkpoint.TreeSize, checkpoint.RootHash, note);
            }
        }
    }

    /// <summary>Reads the state from <paramref name="path"/>; a missing file is an empty state.</summary>
    /// <exception cref="InvalidDataException">The file exists but is not a trust state.</exception>
    public static ClientTrustState Load(string path)
    {
        var state = new ClientTrustState();
        if (!File.Exists(path))
        {
            return state;
        }

        FileModel? model;
        try
        {
            model = JsonSerializer.Deserialize<FileModel>(File.ReadAllText(path), JsonOptions);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"trust state '{path}' is not valid JSON ({e.Message}); restore it, or delete it to trust on first use again", e);
        }

        if (model is null || model.Format != Format)
        {
            throw new InvalidDataException($"trust state '{path}' does not say \"format\": \"{Format}\"");
        }

        try
        {
            foreach (var (ns, entry) in model.Namespaces ?? [])
            {
                state._namespaces[ns] = new AcceptedEpoch(entry.Epoch, Convert.FromHexString(entry.Digest ?? ""));
            }

            foreach (var (name, entry) in model.Witnesses ?? [])
            {
                state._checkpoints[name] = (entry.TreeSize, Convert.FromBase64String(entry.RootHash ?? ""), entry.Checkpoint ?? "");
            }
        }
        catch (FormatException e)
        {
            throw new InvalidDataException($"trust state '{path}' has a digest or root hash that is not hex/base64", e);
        }

        return state;
    }

    /// <summary>
    /// Writes the state to <paramref name="path"/> atomically: a new file (mode 0600) beside it,
    /// flushed to disk, then renamed over the old one, so a crash leaves the old state or the new.
    /// </summary>
    public void Save(string path)
    {
        var model = new FileModel
        {
            Format = Format,
            Namespaces = _namespaces.ToDictionary(p => p.Key, p => new NamespaceModel { Epoch = p.Value.Epoch, Digest = Convert.ToHexStringLower(p.Value.Digest) }, StringComparer.Ordinal),
            Witnesses = _checkpoints.ToDictionary(p => p.Key, p => new WitnessModel
            {
                TreeSize = p.Value.TreeSize,
                RootHash = Convert.ToBase64String(p.Value.RootHash),
                Checkpoint = p.Value.Note,
            }, StringComparer.Ordinal),
        };
        var full = Path.GetFullPath(path);
        var temporary = $"{full}.{Environment.ProcessId}.tmp";
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using (var stream = new FileStream(temporary, options))
        {
            JsonSerializer.Serialize(stream, model, JsonOptions);
            stream.Flush(flushToDisk: true);
        }

        File.Move(temporary, full, overwrite: true);
    }

    private sealed class FileModel
    {
        public string? Format { get; set; }

        public Dictionary<string, NamespaceModel>? Namespaces { get; set; }

        public Dictionary<string, WitnessModel>? Witnesses { get; set; }
    }

    private sealed class NamespaceModel
    {
        public ulong Epoch { get; set; }

        public string? Digest { get; set; }
    }

    private sealed class WitnessModel
    {
        public ulong TreeSize { get; set; }

        [JsonPropertyName("rootHash")]
        public string? RootHash { get; set; }

        public string? Checkpoint { get; set; }
    }
}
