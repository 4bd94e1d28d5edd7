using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
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
        services.AddHsmVaultTokenOptions();
        services.TryAddSingleton<IVaultToken>(sp => Pkcs11VaultToken.Open(
            sp.GetRequiredService<IOptions<TokenOptions>>().Value,
            sp.GetRequiredService<ILoggerFactory>().CreateLogger("HsmVault.Hsm")));
        return services;
    }

    /// <summary>Binds <see cref="TokenOptions"/> from <c>HsmVault:Token</c>, checked at start-up by <see cref="TokenOptionsValidator"/>.</summary>
    public static IServiceCollection AddHsmVaultTokenOptions(this IServiceCollection services)
    {
        services.AddOptions<TokenOptions>().BindConfiguration(TokenOptions.SectionName).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<TokenOptions>, TokenOptionsValidator>());
        return services;
    }
}
