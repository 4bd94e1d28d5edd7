using Grpc.Core;
using HsmVault.Cli;
using HsmVault.Cli.Commands;
using HsmVault.Hsm;

const string Usage = """
    usage: hsmvault <command> [options]

    user commands (talk to a member; --server URL or HSMVAULT_SERVER, default http://127.0.0.1:7101):
      register  --user U [--guess-limit N] [--replace] [--key-out FILE]   new random backup key, stored behind a password
      recover   --user U [--key-out FILE]                                 the backup key back, for the right password
      status    --user U                                                  registered? guesses left?
      delete    --user U                                                  delete the record
        identity: --jwt-file FILE (HSMVAULT_JWT_FILE), or for development --tenant-key FILE
                  (HSMVAULT_TENANT_KEY_FILE) and --tenant T (HSMVAULT_TENANT, default dev-tenant)
        password: asked at the terminal, or --password-file FILE, or --password-stdin; never an argument
        trust:    the fleet's validation bundle is verified before a password-derived byte is sent, with
                  --witness-key VKEY ... (HSMVAULT_WITNESS_KEYS), --operator-key KEY|FILE ... (HSMVAULT_OPERATOR_KEYS),
                  --witness-policy K (HSMVAULT_WITNESS_POLICY, default all) and --trust-state FILE
                  (HSMVAULT_TRUST_STATE, default ~/.config/hsmvault/trust-state.json); --unverified-fleet skips
                  it (a development fleet without a bundle)
        new fleets: when the fleet names a verified successor, register stores the record there and recover
                  moves the user's record there (status shows each registration: fleet, epoch, time); with
                  --jwt-file the successor needs its own token: --successor-jwt-file FILE (HSMVAULT_SUCCESSOR_JWT_FILE)

    recovery codes (never contact the vault):
      recovery-code new                      a new 64-digit code and its key's fingerprint
      recovery-code key [--code-file FILE]   the backup key a code stands for

    operator commands:
      token check --config DAEMON.json | --module PATH --label L   what the token supports of what a member needs
      token init --config DAEMON.json                     generate the keys in the token of a fleet of one
      fleet init --config M1.json [--config M2.json ...]  generate the fleet keys in member 1's token and
                                                          copy them to the others' tokens (key ceremony)
          [--evidence-out FILE --daemon-build DIR [--epoch N] [--fleet F]]   and record it as deployment evidence
      fleet certs --out DIR --fleet F --member ID ...     members' mutual-TLS certificates (CA key not kept)
      fleet bundle --config M1.json ... --namespace NS --epoch N --operator-key FILE --witness URL ... --out FILE
                   [--evidence FILE | --evidence-digest HEX] [--days N (30) | --minutes N]
                                                          log the fleet's validation bundle at the witnesses,
                                                          countersigned by member 1's token
      operator-key new --private FILE --public FILE       the operator's ECDSA P-256 key (private file 0600)
      (a stopped member's state: hsmvaultd recover-from-disaster | seed-bench-users --config DAEMON.json ...)
      tenant-key new --private FILE --public FILE         a development tenant's ES256 key pair
      token mint --user U --fleet F [--tenant-key FILE] [--tenant T] [--minutes N]   a development JWT
      verify-deployment FILE [--daemon-build DIR] [--witness URL --witness-key VKEY ...]
                                                          check deployment evidence step by step (and that the witness logged it)
      audit --witness URL --witness-key VKEY [--witness-key VKEY ...]   replay a witness's whole log
      bench [--server URL] [--seconds N] [--concurrency N] ...                      recoveries per second and latency
    """;

using var cancellation = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cancellation.Cancel();
};

try
{
    var arguments = new Arguments(args);
    var verbs = string.Join(' ', arguments.Verbs);
    return verbs switch
    {
        "register" => await UserCommands.RegisterAsync(arguments, cancellation.Token),
        "recover" => await UserCommands.RecoverAsync(arguments, cancellation.Token),
        "status" => await UserCommands.StatusAsync(arguments, cancellation.Token),
        "delete" => await UserCommands.DeleteAsync(arguments, cancellation.Token),
        "recovery-code new" => RecoveryCodeCommands.New(arguments),
        "recovery-code key" => RecoveryCodeCommands.Key(arguments),
        // A fleet of one is provisioned like any fleet: `token init` is `fleet init` with one member.
        "token init" or "fleet init" => TokenCommands.InitFleet(arguments),
        "fleet certs" => TokenCommands.IssuePeerCertificates(arguments),
        "fleet bundle" => await BundleCommands.PublishAsync(arguments, cancellation.Token),
        "operator-key new" => BundleCommands.NewOperatorKey(arguments),
        "token mint" => TokenCommands.Mint(arguments),
        "token check" => TokenCheckCommand.Run(arguments),
        "tenant-key new" => TokenCommands.NewTenantKey(arguments),
        // Commands on a member's replicated state are the daemon's, which owns that state.
        "member recover-from-disaster" or "member seed-bench-users" => throw new UsageException(
            $"'{verbs}' is a command of the daemon: hsmvaultd {arguments.Verbs[1]} --config DAEMON.json ..."),
        _ when arguments.Verbs is ["verify-deployment", _] => await EvidenceCommands.VerifyDeploymentAsync(arguments, cancellation.Token),
        "audit" => await EvidenceCommands.AuditAsync(arguments, cancellation.Token),
        "bench" => await BenchCommand.RunAsync(arguments, cancellation.Token),
        "" or "help" => PrintUsage(Console.Out, 0),
        _ => throw new UsageException($"unknown command '{verbs}'"),
    };
}
catch (UsageException e)
{
    Console.Error.WriteLine($"hsmvault: {e.Message}");
    return PrintUsage(Console.Error, 64);
}
catch (RpcException e)
{
    Console.Error.WriteLine($"hsmvault: the vault refused: {e.Status.StatusCode}: {e.Status.Detail}");
    return 5;
}
catch (HsmVault.Transparency.Bundles.BundleRefusedException e)
{
    // Its own exit code: the fleet could not be verified, so nothing was sent to it.
    Console.Error.WriteLine($"hsmvault: {e.Message}");
    return 6;
}
catch (Exception e) when (e is HsmVault.Transparency.TransparencyException or TokenConfigurationException or IOException or FormatException or UnauthorizedAccessException)
{
    Console.Error.WriteLine($"hsmvault: {e.Message}");
    return 2;
}

int PrintUsage(TextWriter writer, int exitCode)
{
    writer.WriteLine(Usage);
    return exitCode;
}
