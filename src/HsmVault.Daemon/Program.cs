using HsmVault.Hsm;
using HsmVault.Server;
using Microsoft.Extensions.Options;

try
{
    var app = HsmVaultServer.Build(HsmVaultServer.CreateBuilder(args));
    await app.RunAsync();
    return 0;
}
catch (Exception e) when (e is TokenConfigurationException or OptionsValidationException)
{
    // A configuration mistake is the operator's to fix: say what it is, without a stack trace.
    await Console.Error.WriteLineAsync($"hsmvaultd: {e.Message}");
    return 2;
}
