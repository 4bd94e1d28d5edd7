namespace HsmVault.Cli;

/// <summary>
/// The command line as <c>verb [verb] --name value --flag</c>. Deliberately small: the CLI has
/// few options and no dependency is worth it.
/// </summary>
internal sealed class Arguments
{
    private readonly Dictionary<string, List<string?>> _options = new(StringComparer.Ordinal);
    private readonly HashSet<string> _used = new(StringComparer.Ordinal);

    public Arguments(IReadOnlyList<string> args)
    {
        var verbs = new List<string>();
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            if (!arg.StartsWith("--", StringComparison.Ordinal))
            {
                verbs.Add(arg);
                continue;
            }

            var name = arg[2..];
            var hasValue = i + 1 < args.Count && !args[i + 1].StartsWith("--", StringComparison.Ordinal);
            if (!_options.TryGetValue(name, out var values))
            {
                _options[name] = values = [];
            }

            values.Add(hasValue ? args[++i] : null);
        }

        Verbs = verbs;
    }

    public IReadOnlyList<string> Verbs { get; }

    public string? Optional(string name, string? environmentVariable = null)
    {
        var values = Many(name);
        if (values.Count > 1)
        {
            throw new UsageException($"--{name} may be given only once");
        }

        return values.Count == 1 ? values[0]
            : environmentVariable is null ? null : Environment.GetEnvironmentVariable(environmentVariable);
    }

    /// <summary>Every value of an option that may be repeated.</summary>
    public IReadOnlyList<string> Many(string name)
    {
        _used.Add(name);
        return _options.TryGetValue(name, out var values)
            ? values.Select(v => v ?? throw new UsageException($"--{name} needs a value")).ToList()
            : [];
    }

    public string Required(string name, string? environmentVariable = null) =>
        Optional(name, environmentVariable) ?? throw new UsageException(
            environmentVariable is null ? $"--{name} is required" : $"--{name} (or {environmentVariable}) is required");

    public int Int(string name, int fallback)
    {
        var value = Optional(name);
        return value is null ? fallback
            : int.TryParse(value, out var parsed) ? parsed
            : throw new UsageException($"--{name} must be a whole number; got '{value}'");
    }

    public bool Flag(string name)
    {
        _used.Add(name);
        if (!_options.TryGetValue(name, out var values))
        {
            return false;
        }

        return values is [null] ? true : throw new UsageException($"--{name} takes no value, once");
    }

    /// <summary>Refuses options nobody asked for, so a typo does not pass silently.</summary>
    public void RejectUnknown()
    {
        var unknown = _options.Keys.Where(k => !_used.Contains(k)).ToList();
        if (unknown.Count > 0)
        {
            throw new UsageException($"unknown option{(unknown.Count > 1 ? "s" : "")}: {string.Join(", ", unknown.Select(u => "--" + u))}");
        }
    }
}

/// <summary>A mistake on the command line; printed with the usage hint.</summary>
internal sealed class UsageException(string message) : Exception(message);
