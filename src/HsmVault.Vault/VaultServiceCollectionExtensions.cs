using HsmVault.Hsm;
using HsmVault.Vault.State;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace HsmVault.Vault;

/// <summary>Registers the vault with a host.</summary>
public static class VaultServiceCollectionExtensions
{
    /// <summary>
    /// Binds <see cref="VaultOptions"/> from <c>HsmVault</c> (validated at start-up) and registers
    /// the OPAQUE server key (unsealed from the token), the replicated state and
    /// <see cref="VaultService"/>. The host provides the <see cref="IVaultLog"/> (Raft) and the
    /// token (<see cref="HsmServiceCollectionExtensions.AddHsmVaultToken"/>).
    /// </summary>
    public static IServiceCollection AddHsmVaultCore(this IServiceCollection services)
    {
        services.AddOptions<VaultOptions>().BindConfiguration(VaultOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        if (!services.Any(d => d.ServiceType == typeof(TimeProvider)))
        {
            services.AddSingleton(TimeProvider.System);
        }

        services.AddSingleton(sp => FleetKeys.LoadAkeKey(sp.GetRequiredService<IVaultToken>()));
        services.AddSingleton(sp => new VaultStateMachine(sp.GetRequiredService<IOptions<VaultOptions>>().Value.DataDirectory));
        services.AddSingleton<VaultService>();
        return services;
    }
}
