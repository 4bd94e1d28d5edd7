using System.Collections.Concurrent;

namespace HsmVault.Server.Peering;

/// <summary>
/// Which peers this member may exchange traffic with. Every link is open in production; fault
/// tests close links to partition a member from others (both directions must be closed, one on
/// each side, to cut a link fully), and the transport and peer service honour it exactly as if
/// the network had dropped the traffic.
/// </summary>
public sealed class PeerLinkGate
{
    private readonly ConcurrentDictionary<string, bool> _closed = new(StringComparer.Ordinal);

    /// <summary>Whether traffic to and from <paramref name="peer"/> may pass.</summary>
    public bool IsOpen(string peer) => !_closed.ContainsKey(peer);

    /// <summary>Drops all traffic to and from <paramref name="peer"/> from now on.</summary>
    public void Close(string peer) => _closed[peer] = true;

    /// <summary>Opens every link again.</summary>
    public void OpenAll() => _closed.Clear();
}
