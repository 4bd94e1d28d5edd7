using HsmVault.Hsm;
using HsmVault.Vault.Audit;
using HsmVault.Vault.Moves;
using HsmVault.Vault.Signing;
using HsmVault.Vault.State;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace HsmVault.Vault;

/// <summary>The fleet's member ids, fixed by configuration: only these members' signed commands are applied.</summary>
/// <param name="Ids">Every member, this one included.</param>
public sealed record FleetMembers(IReadOnlySet<string> Ids);

/// <summary>Registers the vault with a host.</summary>
public static class VaultServiceCollectionExtensions
{
    /// <summary>
    /// Binds <see cref="VaultOptions"/> from <c>HsmVault</c> (validated at start-up) and registers
    /// the OPAQUE server key (unsealed from the token), this member's command signer, the
    /// replicated state with its command verifier and audit events, and <see cref="VaultService"/>.
    /// The host provides the <see cref="IVaultLog"/> (Raft), the token
    /// (<see cref="HsmServiceCollectionExtensions.AddHsmVaultToken"/>) and, for a fleet of more
    /// than one, <see cref="FleetMembers"/> (a fleet of one by default).
    /// </summary>
    public static IServiceCollection AddHsmVaultCore(this IServiceCollection services)
    {
        services.AddOptions<VaultOptions>().BindConfiguration(VaultOptions.SectionName).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<VaultOptions>, VaultOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(sp => new FleetMembers(new HashSet<string>(StringComparer.Ordinal) { Options(sp).MemberId }));
        services.TryAddSingleton(sp => FleetKeys.LoadAkeKey(sp.GetRequiredService<IVaultToken>()));
        services.TryAddSingleton(sp => new CommandSigner(sp.GetRequiredService<IVaultToken>(), Options(sp).FleetId, Options(sp).MemberId));
        services.TryAddSingleton(PredecessorFleets.None);
        services.TryAddSingleton(sp => new CommandVerifier(
            Options(sp).FleetId, sp.GetRequiredService<IVaultToken>().SigningKey, sp.GetRequiredService<FleetMembers>().Ids,
            sp.GetRequiredService<PredecessorFleets>()));
        services.TryAddSingleton(sp => new VaultAudit(sp.GetRequiredService<ILoggerFactory>(), Options(sp).LogUserIds));
        services.TryAddSingleton(sp => new VaultStateMachine(
            Options(sp).DataDirectory,
            sp.GetRequiredService<CommandVerifier>(),
            sp.GetRequiredService<VaultAudit>(),
            Options(sp).StateDigestInterval,
            sp.GetRequiredService<FleetMembers>().Ids.Count));
        services.TryAddSingleton<VaultService>();
        return services;
    }

    private static VaultOptions Options(IServiceProvider services) => services.GetRequiredService<IOptions<VaultOptions>>().Value;
}
