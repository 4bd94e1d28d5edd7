using HsmVault.Hsm;
using HsmVault.Witness;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

try
{
    var builder = WitnessServer.CreateBuilder(args);
    // The host logs a failed start with its stack trace before rethrowing; configuration mistakes
    // are reported below without one, and any other failure still escapes with its trace.
    builder.Logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.Critical);
    var app = WitnessServer.Build(builder);
    await app.RunAsync();
    return 0;
}
catch (Exception e) when (e is TokenConfigurationException or OptionsValidationException or FileNotFoundException or InvalidDataException)
{
    // A configuration mistake is the operator's to fix: say what it is, without a stack trace.
    var detail = e is InvalidDataException && e.InnerException is not null ? $" {e.GetBaseException().Message}" : "";
    await Console.Error.WriteLineAsync($"hsmvault-witness: {e.Message}{detail}");
    return 2;
}
