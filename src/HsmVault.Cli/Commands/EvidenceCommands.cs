using Grpc.Net.Client;
using HsmVault.Evidence;
using HsmVault.Transparency;
using HsmVault.Transparency.Notes;
using WitnessClient = HsmVault.Protocol.V1.Witness.WitnessClient;

namespace HsmVault.Cli.Commands;

/// <summary><c>hsmvault verify-deployment</c> and <c>hsmvault audit</c>: anyone's checks of a fleet's evidence and a witness's log.</summary>
internal static class EvidenceCommands
{
    /// <summary>Exit code when verification or the audit finds something wrong.</summary>
    public const int Failed = 1;

    /// <summary>Exit code of an audit whose log verifies but whose witness recorded equivocation attempts.</summary>
    public const int EquivocationsRecorded = 3;

    /// <summary>
    /// <c>hsmvault verify-deployment FILE [--daemon-build DIR] [--witness ADDR --witness-key VKEY ...]</c>:
    /// checks the evidence end to end and prints each check; exit 0 only when all pass.
    /// </summary>
    public static async Task<int> VerifyDeploymentAsync(Arguments args, CancellationToken cancellationToken)
    {
        var file = args.Verbs.Count == 2 ? args.Verbs[1] : throw new UsageException("name the evidence file: hsmvault verify-deployment FILE");
        var daemonBuild = args.Optional("daemon-build");
        var witness = args.Optional("witness");
        var keys = WitnessKeys(args, required: witness is not null);
        args.RejectUnknown();
        if (witness is null && keys.Count > 0)
        {
            throw new UsageException("--witness-key pins the witness that --witness ADDR names: give --witness too");
        }

        using var channel = witness is null ? null : GrpcChannel.ForAddress(witness);
        var options = new DeploymentVerifierOptions
        {
            DaemonBuildDirectory = daemonBuild,
            Log = channel is null ? null : new WitnessEvidenceLog(new WitnessClient(channel), keys),
        };
        var report = await DeploymentVerifier.VerifyAsync(await File.ReadAllBytesAsync(file, cancellationToken), file, options, cancellationToken);
        report.Write(Console.Out);
        return report.Passed ? 0 : Failed;
    }

    /// <summary><c>hsmvault audit --witness ADDR --witness-key VKEY [...]</c>: replays the witness's whole log.</summary>
    public static async Task<int> AuditAsync(Arguments args, CancellationToken cancellationToken)
    {
        var witness = args.Required("witness");
        var keys = WitnessKeys(args, required: true);
        args.RejectUnknown();
        using var channel = GrpcChannel.ForAddress(witness);
        var report = await WitnessLogAudit.RunAsync(new WitnessClient(channel), keys, cancellationToken);
        Console.WriteLine($"Audit of the witness at {witness}");
        report.Write(Console.Out);
        return !report.LogVerified ? Failed : report.Equivocations.Count > 0 ? EquivocationsRecorded : 0;
    }

    private static List<NoteVerifierKey> WitnessKeys(Arguments args, bool required)
    {
        var texts = args.Many("witness-key");
        if (required && texts.Count == 0)
        {
            throw new UsageException("pin the witness with --witness-key VKEY (its note verifier key, name+id+base64, as the witness prints it)");
        }

        try
        {
            return [.. texts.Select(NoteVerifierKey.Parse)];
        }
        catch (TransparencyException e)
        {
            throw new UsageException($"--witness-key: {e.Message}");
        }
    }
}
