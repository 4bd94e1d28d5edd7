using System.Globalization;
using HsmVault.Consensus;
using HsmVault.Hsm;
using HsmVault.Vault;
using HsmVault.Vault.Replication;
using HsmVault.Vault.State;
using Microsoft.Extensions.Configuration;

namespace HsmVault.Server.Maintenance;

/// <summary>
/// The commands <c>hsmvaultd</c> runs instead of serving, on a stopped member's own token and data
/// folder: they work on the replicated state and its SQLite file, which is the daemon's business
/// and none of the client tool's. They read the member's configuration as the daemon does (the
/// <c>--config</c> file, <c>HSMVAULT_*</c> variables, <c>--Section:Key=value</c> overrides).
/// </summary>
public static class MemberCommands
{
    /// <summary>What <c>hsmvaultd</c> prints for a command it cannot run.</summary>
    public const string Usage = """
        usage: hsmvaultd --config DAEMON.json                     serve as a member of the fleet
               hsmvaultd recover-from-disaster --config DAEMON.json
                   with the member stopped, after choosing the state the fleet continues from
                   (README, disaster recovery)
               hsmvaultd seed-bench-users --config DAEMON.json --users N [--tenant T]
                   N synthetic users in a new, stopped member's state (every member alike,
                   before the first start; benchmarks)
        """;

    private static readonly Dictionary<string, (string[] Options, Func<IConfiguration, TextWriter, int> Run)> Commands = new(StringComparer.Ordinal)
    {
        ["recover-from-disaster"] = (["config"], RecoverFromDisaster),
        ["seed-bench-users"] = (["config", "users", "tenant"], SeedBenchUsers),
    };

    /// <summary>Whether <paramref name="args"/> name one of these commands rather than a daemon to start.</summary>
    public static bool IsCommand(string[] args) => args is [var first, ..] && Commands.ContainsKey(first);

    /// <summary>Runs the command <paramref name="args"/> name.</summary>
    /// <returns>The exit code: 0 done, 2 refused (what went wrong is on <paramref name="error"/>), 64 a usage mistake.</returns>
    public static int Run(string[] args, TextWriter output, TextWriter error)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        if (!IsCommand(args))
        {
            throw new ArgumentException("not a member command", nameof(args));
        }

        var (options, run) = Commands[args[0]];
        try
        {
            return run(ReadConfiguration(args[0], args[1..], options), output);
        }
        catch (UsageException e)
        {
            error.WriteLine($"hsmvaultd {args[0]}: {e.Message}");
            error.WriteLine(Usage);
            return 64;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException)
        {
            error.WriteLine($"hsmvaultd {args[0]}: {e.Message}");
            return 2;
        }
    }

    /// <summary>
    /// <c>hsmvaultd recover-from-disaster --config DAEMON.json</c>: the way out of a state the fleet
    /// refuses to serve from by design, after the operator has chosen which member's state the fleet
    /// continues from (see the README's disaster-recovery procedure). Run it with the member stopped,
    /// on every member. It keeps the term and vote in the token's high-water mark (so no member votes
    /// twice in a term) but forgets the vouched log position, and clears a recorded divergence.
    /// Entries acknowledged beyond what the kept data holds are given up: that is the operator's
    /// decision, and why this is a command of its own.
    /// </summary>
    private static int RecoverFromDisaster(IConfiguration configuration, TextWriter output)
    {
        var dataDirectory = DataDirectory(configuration);
        var tokenOptions = configuration.GetSection(TokenOptions.SectionName).Get<TokenOptions>()
            ?? throw new UsageException($"the configuration has no {TokenOptions.SectionName} section");
        using (var token = Pkcs11VaultToken.Open(tokenOptions))
        {
            var marks = new TokenHighWaterMarkStore(token);
            if (marks.Read() is { } mark)
            {
                marks.Write(new HighWaterMark(mark.Term, mark.Vote, Index: 0, IndexTerm: 0));
                output.WriteLine($"token '{token.Description.Label}': high-water mark kept term {mark.Term} and its vote, forgot the vouched position {mark.Index}");
            }
            else
            {
                output.WriteLine($"token '{token.Description.Label}': no high-water mark");
            }
        }

        var divergence = VaultStateMachine.ClearDivergence(dataDirectory);
        output.WriteLine(divergence is null
            ? $"{dataDirectory}: no divergence recorded"
            : $"{dataDirectory}: cleared the recorded divergence ({divergence})");
        return 0;
    }

    /// <summary>
    /// <c>hsmvaultd seed-bench-users --config DAEMON.json --users N [--tenant T]</c>: puts N synthetic
    /// registered users straight into a new member's state, for benchmarks with a realistic amount of
    /// data (1k, 100k, 1M users) without a million registrations through the API. Run it on every
    /// member of a new fleet, with the members stopped and before their first start: the users are the
    /// same on every member (see <see cref="VaultStateMachine.SeedSyntheticUsers"/>), so the members'
    /// states stay equal.
    /// </summary>
    private static int SeedBenchUsers(IConfiguration configuration, TextWriter output)
    {
        var usersText = configuration["users"] ?? "1000";
        if (!int.TryParse(usersText, NumberStyles.None, CultureInfo.InvariantCulture, out var users) || users < 1)
        {
            throw new UsageException("--users must be a whole number, at least 1");
        }

        var tenant = configuration["tenant"] ?? "dev-tenant";
        var dataDirectory = DataDirectory(configuration);
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        VaultStateMachine.SeedSyntheticUsers(dataDirectory, tenant, users);
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{dataDirectory}: {users} synthetic users of tenant '{tenant}' in {System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds:F1} s"));
        return 0;
    }

    private static string DataDirectory(IConfiguration configuration)
    {
        var key = $"{VaultOptions.SectionName}:{nameof(VaultOptions.DataDirectory)}";
        var dataDirectory = configuration[key];
        return string.IsNullOrEmpty(dataDirectory) ? throw new UsageException($"the configuration names no {key}") : dataDirectory;
    }

    /// <summary>
    /// The command's options (<c>--name value</c> or <c>--name=value</c>, only those it knows) over the
    /// member's configuration, read as the daemon reads it: the file, then <c>HSMVAULT_*</c> variables,
    /// then configuration keys on the command line.
    /// </summary>
    private static IConfiguration ReadConfiguration(string command, string[] args, string[] options)
    {
        var overrides = new List<string>();
        var values = new Dictionary<string, string?>(StringComparer.Ordinal);
        for (var i = 0; i < args.Length; i++)
        {
            var argument = args[i];
            if (!argument.StartsWith("--", StringComparison.Ordinal) || argument.Length == 2)
            {
                throw new UsageException($"unexpected argument '{argument}'");
            }

            var name = argument[2..];
            string? value = null;
            if (name.IndexOf('=', StringComparison.Ordinal) is var equals and >= 0)
            {
                (name, value) = (name[..equals], name[(equals + 1)..]);
            }

            if (name.Contains(':', StringComparison.Ordinal))
            {
                // A configuration key, as the daemon takes them: --HsmVault:DataDirectory=DIR.
                overrides.Add(argument);
                if (value is null && i + 1 < args.Length)
                {
                    overrides.Add(args[++i]);
                }

                continue;
            }

            if (!options.Contains(name, StringComparer.Ordinal))
            {
                throw new UsageException($"{command} takes no --{name}");
            }

            values[name] = value ?? (i + 1 < args.Length ? args[++i] : throw new UsageException($"--{name} needs a value"));
        }

        if (!values.TryGetValue("config", out var configFile) || string.IsNullOrEmpty(configFile))
        {
            throw new UsageException("name the member's configuration with --config DAEMON.json");
        }

        return new ConfigurationBuilder()
            .AddJsonFile(Path.GetFullPath(configFile), optional: false)
            .AddEnvironmentVariables("HSMVAULT_")
            .AddCommandLine([.. overrides])
            .AddInMemoryCollection(values)
            .Build();
    }

    private sealed class UsageException(string message) : Exception(message);
}
