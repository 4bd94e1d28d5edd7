using HsmVault.Vault;
using HsmVault.Vault.State;
using Microsoft.Extensions.Configuration;

namespace HsmVault.Cli.Commands;

/// <summary>
/// <c>hsmvault member seed-bench-users --config DAEMON.json --users N [--tenant T]</c>: puts N synthetic
/// registered users straight into a new member's state, for benchmarks with a realistic amount of data (1k, 100k,
/// 1M users) without a million registrations through the API. Run it on every member of a new fleet, with the
/// members stopped and before their first start: the users are the same on every member (see
/// <see cref="VaultStateMachine.SeedSyntheticUsers"/>), so the members' states stay equal.
/// </summary>
internal static class SeedUsersCommand
{
    public static int Run(Arguments args)
    {
        var configFile = args.Required("config");
        var users = args.Int("users", 1000);
        var tenant = args.Optional("tenant", "HSMVAULT_TENANT") ?? "dev-tenant";
        args.RejectUnknown();
        if (users < 1)
        {
            throw new UsageException("--users must be at least 1");
        }

        var configuration = new ConfigurationBuilder().AddJsonFile(Path.GetFullPath(configFile), optional: false).Build();
        var dataDirectory = configuration[$"{VaultOptions.SectionName}:{nameof(VaultOptions.DataDirectory)}"]
            ?? throw new UsageException($"'{configFile}' names no {VaultOptions.SectionName}:{nameof(VaultOptions.DataDirectory)}");
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        VaultStateMachine.SeedSyntheticUsers(dataDirectory, tenant, users);
        Console.WriteLine($"{dataDirectory}: {users} synthetic users of tenant '{tenant}' in {System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds:F1} s");
        return 0;
    }
}
