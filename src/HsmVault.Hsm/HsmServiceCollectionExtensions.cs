using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace HsmVault.Hsm;

/// <summary>Registers the member's token with a host.</summary>
public static class HsmServiceCollectionExtensions
{
    /// <summary>
    /// Binds <see cref="TokenOptions"/> from <c>HsmVault:Token</c> (validated at start-up) and
    /// registers the token as <see cref="IVaultToken"/>, opened on first use.
    /// </summary>
    public static IServiceCollection AddHsmVaultToken(this IServiceCollection services)
    {
        services.AddOptions<TokenOptions>().BindConfiguration(TokenOptions.SectionName).ValidateDataAnnotations()
            .Validate(o => !string.IsNullOrEmpty(o.TokenLabel) || !string.IsNullOrEmpty(o.TokenSerial),
                "HsmVault:Token needs TokenLabel or TokenSerial to find the token")
            .Validate(o => !string.IsNullOrEmpty(o.PinFile) || !string.IsNullOrEmpty(o.PinEnvironmentVariable),
                "HsmVault:Token needs PinFile or PinEnvironmentVariable; the PIN is never taken from the command line")
            .ValidateOnStart();
        services.AddSingleton<IVaultToken>(sp => Pkcs11VaultToken.Open(
            sp.GetRequiredService<IOptions<TokenOptions>>().Value,
            sp.GetRequiredService<ILoggerFactory>().CreateLogger("HsmVault.Hsm")));
        return services;
    }
}
