using Grpc.Core.Interceptors;

namespace HsmVault.Server.Peering;

/// <summary>
/// Wraps every call this member makes to one other member (<see cref="PeerConnections.ClientFor"/>). Production
/// registers none; the fleet tests register one that cuts links, as a network that loses everything would.
/// </summary>
public interface IPeerCallInterceptor
{
    /// <summary>The interceptor for this member's calls to <paramref name="memberId"/>.</summary>
    Interceptor ForMember(string memberId);
}
