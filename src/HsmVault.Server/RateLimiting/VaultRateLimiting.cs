using System.Globalization;
using System.Threading.RateLimiting;
using Grpc.Core;
using HsmVault.Server.Authentication;
using HsmVault.Server.Internal;
using HsmVault.Server.Peering;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;

namespace HsmVault.Server.RateLimiting;

/// <summary>
/// The member's rate limits, through ASP.NET Core's rate-limiting middleware: every call with a
/// valid token draws from its tenant's bucket and its user's bucket; every other client call
/// (GetFleetInfo, health checks, refused tokens) from its remote address's bucket. Peer traffic
/// (mutual TLS on the peer port) is not limited: Raft must never be starved by clients. A refusal
/// is RESOURCE_EXHAUSTED naming the limit and when to retry.
/// </summary>
public static partial class VaultRateLimiting
{
    /// <summary>Response header (read by gRPC clients as trailing metadata) with the suggested wait in milliseconds.</summary>
    public const string RetryAfterTrailer = "hsmvault-retry-after-ms";

    /// <summary>Registers the options and the limiter; the pipeline applies it after authentication.</summary>
    public static IServiceCollection AddHsmVaultRateLimiting(this IServiceCollection services)
    {
        services.AddOptions<RateLimitOptions>().BindConfiguration(RateLimitOptions.SectionName).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<RateLimitOptions>, RateLimitOptionsValidator>());
        services.AddRateLimiter(_ => { });
        services.AddOptions<RateLimiterOptions>()
            .Configure<IOptions<AuthOptions>, IOptions<RateLimitOptions>, IServiceProvider>((rateLimiter, auth, limits, provider) =>
            {
                rateLimiter.GlobalLimiter = CreateLimiter(auth.Value, limits.Value, provider.GetService<PeerEndpoint>()?.Port);
                rateLimiter.OnRejected = OnRejectedAsync;
            });
        return services;
    }

    private static PartitionedRateLimiter<HttpContext> CreateLimiter(AuthOptions auth, RateLimitOptions limits, int? peerPort)
    {
        var tenants = auth.Tenants.ToDictionary(t => t.Issuer, StringComparer.Ordinal);
        var userLimit = TokenBuckets.Describe(limits.UserOpsPerSec, limits.UserBurstOps);
        var anonymousLimit = TokenBuckets.Describe(limits.UnauthenticatedOpsPerSec, limits.UnauthenticatedBurstOps);

        // Chained: a call passes only if every bucket that applies to it has a token. A partition
        // that does not apply to a call is the shared no-op partition of its limiter.
        var tenant = PartitionedRateLimiter.Create<HttpContext, string>(context =>
            Caller(context, peerPort) is var (issuer, _) && tenants.TryGetValue(issuer, out var options)
                ? RateLimitPartition.Get(issuer, _ => TokenBuckets.Create(options.CapacityOpsPerSec, options.BurstOps,
                    $"tenant '{CallerText.Escape(issuer)}''s limit of {TokenBuckets.Describe(options.CapacityOpsPerSec, options.BurstOps)}"))
                : RateLimitPartition.GetNoLimiter(""));
        var user = PartitionedRateLimiter.Create<HttpContext, (string, string)>(context =>
            Caller(context, peerPort) is { } caller
                ? RateLimitPartition.Get(caller, _ => TokenBuckets.Create(limits.UserOpsPerSec, limits.UserBurstOps, $"the per-user limit of {userLimit}"))
                : RateLimitPartition.GetNoLimiter(("", "")));
        var anonymous = PartitionedRateLimiter.Create<HttpContext, string>(context =>
            IsPeerCall(context, peerPort) || Caller(context, peerPort) is not null
                ? RateLimitPartition.GetNoLimiter("")
                : RateLimitPartition.Get(context.Connection.RemoteIpAddress?.ToString() ?? "unknown", _ => TokenBuckets.Create(
                    limits.UnauthenticatedOpsPerSec, limits.UnauthenticatedBurstOps, $"the limit of {anonymousLimit} on unauthenticated calls from one address")));
        return PartitionedRateLimiter.CreateChained(tenant, user, anonymous);
    }

    /// <summary>The validated (tenant, subject) of a client call, or null for peer and unauthenticated calls.</summary>
    private static (string Issuer, string Subject)? Caller(HttpContext context, int? peerPort)
    {
        if (IsPeerCall(context, peerPort) || context.User.Identity?.IsAuthenticated != true)
        {
            return null;
        }

        var issuer = context.User.FindFirst(JwtRegisteredClaimNames.Iss)?.Value;
        var subject = context.User.FindFirst(JwtRegisteredClaimNames.Sub)?.Value;
        // A valid token without a subject is refused by the service; count it with its tenant.
        return issuer is null ? null : (issuer, subject ?? "");
    }

    private static bool IsPeerCall(HttpContext context, int? peerPort) => peerPort is not null && context.Connection.LocalPort == peerPort;

    private static ValueTask OnRejectedAsync(OnRejectedContext rejected, CancellationToken cancellationToken)
    {
        var context = rejected.HttpContext;
        var limit = rejected.Lease.TryGetMetadata(MetadataName.ReasonPhrase, out var reason) ? reason : "a rate limit";
        var retryAfter = rejected.Lease.TryGetMetadata(MetadataName.RetryAfter, out var after) ? after : TimeSpan.FromSeconds(1);
        var message = string.Create(CultureInfo.InvariantCulture, $"rate limit exceeded: {limit} on this member; retry in {retryAfter.TotalSeconds:0.###} s");
        var logger = context.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(VaultRateLimiting));
        if (logger.IsEnabled(LogLevel.Debug))
        {
            // Under a flood: the caller's hash and the escaped path only when the event is recorded.
            var caller = context.User.Identity?.IsAuthenticated == true
                ? CallerText.UserHash(context.User.FindFirst(JwtRegisteredClaimNames.Iss)?.Value ?? "", context.User.FindFirst(JwtRegisteredClaimNames.Sub)?.Value ?? "")
                : context.Connection.RemoteIpAddress?.ToString() ?? "(unknown)";
            var path = CallerText.Escape(context.Request.Path.Value);
            Log.Refused(logger, path, caller, message);
        }

        var retryMilliseconds = ((long)Math.Ceiling(retryAfter.TotalMilliseconds)).ToString(CultureInfo.InvariantCulture);
        return new ValueTask(GrpcStatusResponse.WriteAsync(context.Response, StatusCode.ResourceExhausted, message,
            [new KeyValuePair<string, string>(RetryAfterTrailer, retryMilliseconds)]));
    }

    private static partial class Log
    {
        // Debug: under a flood this fires for every refused call; the limit's own description
        // names the tenant escaped, and the caller is a hash or an address, never a subject.
        [LoggerMessage(EventId = 1200, EventName = "RateLimited", Level = LogLevel.Debug, Message = "Refused a call to {Path} from {Caller}: {Reason}")]
        public static partial void Refused(ILogger logger, string path, string caller, string reason);
    }
}
