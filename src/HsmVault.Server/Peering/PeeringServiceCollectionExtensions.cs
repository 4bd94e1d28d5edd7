using HsmVault.Consensus;
using HsmVault.Hsm;
using HsmVault.Vault;
using HsmVault.Vault.Replication;
using HsmVault.Vault.State;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace HsmVault.Server.Peering;

/// <summary>Registers replication: the member's Raft host, its storage, the peer transport and the vault's log over them.</summary>
public static class PeeringServiceCollectionExtensions
{
    /// <summary>
    /// Binds <see cref="PeerOptions"/> from <c>HsmVault:Peer</c> (validated at start-up) and
    /// registers the Raft host (file storage in the data folder, high-water mark in the token,
    /// gRPC transport), its <see cref="LeaderRouter"/> over <see cref="GrpcLeaderLink"/>, and
    /// <see cref="ReplicatedVaultLog"/> as the vault's <see cref="IVaultLog"/>.
    /// A fleet of one runs the same Raft, alone.
    /// </summary>
    public static IServiceCollection AddHsmVaultPeering(this IServiceCollection services)
    {
        services.AddOptions<PeerOptions>().BindConfiguration(PeerOptions.SectionName).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<PeerOptions>, PeerOptionsValidation>());
        // Null in a fleet of one (no peer endpoint, no peer certificates): GetService answers null.
        services.TryAddSingleton(sp => PeerEndpoint.From(
            sp.GetRequiredService<IOptions<PeerOptions>>().Value, sp.GetRequiredService<IOptions<VaultOptions>>().Value)!);
        services.TryAddSingleton(sp => sp.GetService<PeerEndpoint>()?.Certificates!);
        services.AddOptions<KestrelServerOptions>().Configure<IServiceProvider>((kestrel, sp) => sp.GetService<PeerEndpoint>()?.Listen(kestrel));
        services.TryAddSingleton(sp => new PeerConnections(
            sp.GetRequiredService<IOptions<PeerOptions>>().Value,
            sp.GetRequiredService<IOptions<VaultOptions>>().Value.FleetId,
            sp.GetRequiredService<IOptions<VaultOptions>>().Value.MemberId,
            sp.GetService<PeerCertificates>(),
            sp.GetServices<IPeerCallInterceptor>()));
        // Before AddHsmVaultCore's fleet of one, which it replaces (both TryAdd: the first wins).
        services.TryAddSingleton(sp => new FleetMembers(sp.GetRequiredService<IOptions<PeerOptions>>().Value
            .MemberIds(sp.GetRequiredService<IOptions<VaultOptions>>().Value.MemberId).ToHashSet(StringComparer.Ordinal)));
        services.TryAddSingleton<GrpcRaftTransport>();
        services.TryAddSingleton(sp => new FileRaftStorage(Path.Combine(sp.GetRequiredService<IOptions<VaultOptions>>().Value.DataDirectory, "raft")));
        services.TryAddSingleton(CreateRaftHost);
        services.TryAddSingleton<ILeaderLink, GrpcLeaderLink>();
        services.TryAddSingleton(sp => new LeaderRouter(
            sp.GetRequiredService<RaftHost>(),
            sp.GetRequiredService<ILeaderLink>(),
            sp.GetRequiredService<IOptions<PeerOptions>>().Value.CommitTimeout,
            sp.GetRequiredService<TimeProvider>()));
        services.TryAddSingleton<IVaultLog, ReplicatedVaultLog>();
        services.AddHostedService<RaftHostedService>();
        services.AddHostedService<StateDigestPublisher>();
        return services;
    }

    private static RaftHost CreateRaftHost(IServiceProvider services)
    {
        var vault = services.GetRequiredService<IOptions<VaultOptions>>().Value;
        var peer = services.GetRequiredService<IOptions<PeerOptions>>().Value;
        var options = new RaftHostOptions
        {
            NodeId = vault.MemberId,
            TickInterval = peer.TickInterval,
            ElectionTicks = peer.ElectionTicks,
            SnapshotInterval = peer.SnapshotEveryEntries,
            RequestTimeout = peer.CommitTimeout,
        };
        foreach (var member in peer.MemberIds(vault.MemberId))
        {
            options.Members.Add(member);
        }

        return new RaftHost(
            options,
            services.GetRequiredService<FileRaftStorage>(),
            services.GetRequiredService<VaultStateMachine>(),
            services.GetRequiredService<GrpcRaftTransport>(),
            new TokenHighWaterMarkStore(
                services.GetRequiredService<IVaultToken>(),
                services.GetRequiredService<ILogger<TokenHighWaterMarkStore>>(),
                services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping),
            services.GetRequiredService<TimeProvider>(),
            new Random(),
            services.GetRequiredService<ILogger<RaftHost>>());
    }
}
