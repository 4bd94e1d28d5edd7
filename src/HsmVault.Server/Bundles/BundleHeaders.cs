using System.Globalization;
using HsmVault.Server.Peering;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace HsmVault.Server.Bundles;

/// <summary>
/// Every client response of a member that serves a validation bundle carries its epoch and digest
/// (vault.proto, "Trust"), refusals and health checks included, so a client that cached a verified
/// bundle sees when the fleet moved to another. Peer traffic has no use for them.
/// </summary>
public static class BundleHeaders
{
    /// <summary>The served bundle's epoch, decimal.</summary>
    public const string Epoch = "hsmvault-bundle-epoch";

    /// <summary>The served bundle's SHA-256 digest, lowercase hex.</summary>
    public const string Digest = "hsmvault-bundle-digest";

    /// <summary>Adds the headers to every response not on the peer port.</summary>
    public static IApplicationBuilder UseBundleHeaders(this IApplicationBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var served = app.ApplicationServices.GetRequiredService<ServedBundle>();
        var peerPort = app.ApplicationServices.GetService<PeerEndpoint>()?.Port;
        return app.Use((context, next) =>
        {
            if (served.Current is { } current && context.Connection.LocalPort != peerPort)
            {
                context.Response.Headers[Epoch] = current.Bundle.Epoch.ToString(CultureInfo.InvariantCulture);
                context.Response.Headers[Digest] = current.DigestHex;
            }

            return next(context);
        });
    }
}
