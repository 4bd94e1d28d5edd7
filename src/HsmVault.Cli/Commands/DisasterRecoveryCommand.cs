using HsmVault.Consensus;
using HsmVault.Hsm;
using HsmVault.Vault;
using HsmVault.Vault.Replication;
using HsmVault.Vault.State;
using Microsoft.Extensions.Configuration;

namespace HsmVault.Cli.Commands;

/// <summary>
/// <c>hsmvault member recover-from-disaster --config DAEMON.json</c>: the way out of a state the
/// fleet refuses to serve from by design, after the operator has chosen which member's state the
/// fleet continues from (see the README's disaster-recovery procedure). Run it with the member
/// stopped, on every member. It keeps the term and vote in the token's high-water mark (so no
/// member votes twice in a term) but forgets the vouched log position, and clears a recorded
/// divergence. Entries acknowledged beyond what the kept data holds are given up: that is the
/// operator's decision, and why this is a command of its own.
/// </summary>
internal static class DisasterRecoveryCommand
{
    public static int Run(Arguments args)
    {
        var configFile = args.Required("config");
        args.RejectUnknown();
        var configuration = new ConfigurationBuilder().AddJsonFile(Path.GetFullPath(configFile), optional: false).Build();
        var dataDirectory = configuration[$"{VaultOptions.SectionName}:{nameof(VaultOptions.DataDirectory)}"]
            ?? throw new UsageException($"'{configFile}' names no {VaultOptions.SectionName}:{nameof(VaultOptions.DataDirectory)}");

        using (var token = Pkcs11VaultToken.Open(TokenCommands.ReadTokenOptions(configFile)))
        {
            var marks = new TokenHighWaterMarkStore(token);
            if (marks.Read() is { } mark)
            {
                marks.Write(new HighWaterMark(mark.Term, mark.Vote, Index: 0, IndexTerm: 0));
                Console.WriteLine($"token '{token.Description.Label}': high-water mark kept term {mark.Term} and its vote, forgot the vouched position {mark.Index}");
            }
            else
            {
                Console.WriteLine($"token '{token.Description.Label}': no high-water mark");
            }
        }

        var divergence = VaultStateMachine.ClearDivergence(dataDirectory);
        Console.WriteLine(divergence is null
            ? $"{dataDirectory}: no divergence recorded"
            : $"{dataDirectory}: cleared the recorded divergence ({divergence})");
        return 0;
    }
}
