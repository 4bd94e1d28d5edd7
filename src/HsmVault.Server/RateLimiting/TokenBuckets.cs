using System.Globalization;
using System.Threading.RateLimiting;

namespace HsmVault.Server.RateLimiting;

/// <summary>
/// One token bucket (a sustained rate and a burst) as System.Threading.RateLimiting builds it,
/// with a description of the limit that travels on refused leases, so a refusal can say which
/// limit it hit.
/// </summary>
internal static class TokenBuckets
{
    /// <summary>Smallest rate accepted: about one call a day.</summary>
    private const double MinRate = 1.0 / 86_400;

    /// <summary>Whether <paramref name="opsPerSec"/> can be a bucket's rate.</summary>
    public static bool IsValidRate(double opsPerSec) => opsPerSec >= MinRate && !double.IsInfinity(opsPerSec);

    /// <summary>"10 calls/s (burst 100)".</summary>
    public static string Describe(double opsPerSec, int burst) =>
        string.Create(CultureInfo.InvariantCulture, $"{opsPerSec:G6} calls/s (burst {burst})");

    /// <summary>A bucket of <paramref name="burst"/> tokens refilled at <paramref name="opsPerSec"/>, refusing at once when empty.</summary>
    public static ReplenishingRateLimiter Create(double opsPerSec, int burst, string description) =>
        new DescribedLimiter(
            new TokenBucketRateLimiter(new TokenBucketRateLimiterOptions
            {
                TokenLimit = burst,
                // One token per period of 1/rate. Refilled by the partitioned limiter's 100 ms
                // heartbeat in proportion to the time passed (not by a timer per bucket: there is
                // a bucket per user), so the period only sets the rate and the retry-after hint.
                TokensPerPeriod = 1,
                ReplenishmentPeriod = TimeSpan.FromTicks(Math.Max(1, (long)(TimeSpan.TicksPerSecond / opsPerSec))),
                AutoReplenishment = false,
                QueueLimit = 0,
            }),
            description);

    /// <summary>Forwards to a bucket; a refused lease also carries the bucket's description as its reason phrase.</summary>
    private sealed class DescribedLimiter(TokenBucketRateLimiter bucket, string description) : ReplenishingRateLimiter
    {
        public override bool IsAutoReplenishing => bucket.IsAutoReplenishing;

        public override TimeSpan ReplenishmentPeriod => bucket.ReplenishmentPeriod;

        public override TimeSpan? IdleDuration => bucket.IdleDuration;

        public override bool TryReplenish() => bucket.TryReplenish();

        public override RateLimiterStatistics? GetStatistics() => bucket.GetStatistics();

        protected override RateLimitLease AttemptAcquireCore(int permitCount) => Described(bucket.AttemptAcquire(permitCount));

        protected override async ValueTask<RateLimitLease> AcquireAsyncCore(int permitCount, CancellationToken cancellationToken) =>
            Described(await bucket.AcquireAsync(permitCount, cancellationToken).ConfigureAwait(false));

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                bucket.Dispose();
            }

            base.Dispose(disposing);
        }

        protected override async ValueTask DisposeAsyncCore()
        {
            await bucket.DisposeAsync().ConfigureAwait(false);
            await base.DisposeAsyncCore().ConfigureAwait(false);
        }

        private RateLimitLease Described(RateLimitLease lease) => lease.IsAcquired ? lease : new RefusedLease(lease, description);
    }

    private sealed class RefusedLease(RateLimitLease refused, string description) : RateLimitLease
    {
        public override bool IsAcquired => false;

        public override IEnumerable<string> MetadataNames => [.. refused.MetadataNames, MetadataName.ReasonPhrase.Name];

        public override bool TryGetMetadata(string metadataName, out object? metadata)
        {
            if (metadataName == MetadataName.ReasonPhrase.Name)
            {
                metadata = description;
                return true;
            }

            return refused.TryGetMetadata(metadataName, out metadata);
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                refused.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}
