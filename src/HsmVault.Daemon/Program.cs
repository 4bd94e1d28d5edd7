using HsmVault.Hsm;
using HsmVault.Server;
using HsmVault.Server.Maintenance;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

try
{
    if (MemberCommands.IsCommand(args))
    {
        return MemberCommands.Run(args, Console.Out, Console.Error);
    }

    var builder = HsmVaultServer.CreateBuilder(args);
    // The host logs a failed start with its stack trace before rethrowing; configuration mistakes
    // are reported below without one, and any other failure still escapes with its trace.
    builder.Logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.Critical);
    var app = HsmVaultServer.Build(builder);
    HsmVaultServer.HardenProcess(app);
    await app.RunAsync();
    return 0;
}
catch (Exception e) when (e is TokenConfigurationException or OptionsValidationException or StartupRefusedException or FileNotFoundException or InvalidDataException)
{
    // A configuration mistake is the operator's to fix: say what it is, without a stack trace
    // (for a config file that does not parse, also where: the innermost message has the position).
    var detail = e is InvalidDataException ? $" {e.GetBaseException().Message}" : "";
    await Console.Error.WriteLineAsync($"hsmvaultd: {e.Message}{detail}");
    return 2;
}
