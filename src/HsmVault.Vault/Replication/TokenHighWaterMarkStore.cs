using System.Buffers.Binary;
using System.Text;
using HsmVault.Consensus;
using HsmVault.Hsm;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace HsmVault.Vault.Replication;

/// <summary>
/// Keeps Raft's rollback guard in the token, out of reach of anyone who restores the data
/// directory from an old copy: the term, vote and last acknowledged position this member has
/// vouched for. On a hardware token the mark lives in the HSM; on SoftHSM2 in its token folder,
/// which must therefore be kept apart from the data folder.
/// </summary>
/// <remarks>
/// A token write is slow (a hardware token's non-volatile memory is slow and wears; SoftHSM2 rewrites an object's
/// file). So: RaftNode asks for a write only when term, vote or vouched position changed, at most once per batch
/// (a batch grows with load, so one write vouches for every entry in it); the store keeps the last mark it read or
/// wrote and never rewrites an equal one (e.g. the mark it started from); and the token remembers where the mark's
/// two copies are and rewrites the older in place (<c>IVaultToken.WriteDataObject</c>): one attribute written, no
/// object created or destroyed, no search. Creating and destroying an object per batch, as before, cost a fleet of
/// one about half its throughput on SoftHSM2 (about 12 truncate-and-write cycles of an object file, and a changed
/// token generation that made every other session rescan the token folder).
/// <para>
/// It does not vouch ahead in windows (write a mark N entries beyond the batch so most batches need none), though
/// that would amortize writes further: the guarantee would hold — the mark would still be at or above every
/// position vouched for — but the mark would be above what the log durably holds, so every plain crash would look
/// like a rollback, and a fleet of one, or members that crashed within one window, could then never elect a leader
/// again (no log in the fleet reaches the bound, and only the dead term's leader could have written it). The
/// simulator shows both halves (<c>Simulation_MarkVouchedAheadInWindows_StaysSafeButStallsAfterCrashes</c>); see
/// <c>RaftNode.RestoreFromHighWaterMark</c>. For the same reason the write is not overlapped with the log's
/// fsync: a mark durable before the entries it covers is a window of one batch. The store is used by the Raft loop
/// alone.
/// </para>
/// <para>
/// A token that is unreachable when a mark must be written (pulled out, its session or login lost beyond the
/// token's own retry) makes <see cref="Write"/> wait for it, retrying with backoff, instead of failing: the member
/// may not send, acknowledge or apply anything the mark does not cover, so it stands still — followers elect
/// another leader, its clients' writes wait — and carries on where it stopped once the token answers, with
/// nothing lost. Failing instead would stop the whole daemon over a token that comes back a second later.
/// </para>
/// </remarks>
/// <param name="token">The member's token.</param>
/// <param name="logger">Where waiting for the token is reported.</param>
/// <param name="stopping">Ends a wait for the token when the member shuts down (the write then throws).</param>
public sealed partial class TokenHighWaterMarkStore(IVaultToken token, ILogger? logger = null, CancellationToken stopping = default) : IHighWaterMarkStore
{
    private static readonly TimeSpan FirstRetryDelay = TimeSpan.FromMilliseconds(50);
    private static readonly TimeSpan LongestRetryDelay = TimeSpan.FromSeconds(2);

    private readonly ILogger _logger = logger ?? NullLogger.Instance;
    private HighWaterMark? _last;

    /// <summary>Name of the token data object holding the mark.</summary>
    public const string ObjectName = "raft-high-water-mark";

    private const byte FormatVersion = 1;

    /// <inheritdoc/>
    public HighWaterMark? Read()
    {
        var bytes = token.ReadDataObject(ObjectName);
        if (bytes is null)
        {
            return null;
        }

        if (bytes.Length < 1 + 24 + 2 || bytes[0] != FormatVersion)
        {
            throw new InvalidDataException($"the token's '{ObjectName}' object has an unknown layout");
        }

        var span = bytes.AsSpan(1);
        var term = BinaryPrimitives.ReadUInt64BigEndian(span);
        var index = BinaryPrimitives.ReadUInt64BigEndian(span[8..]);
        var indexTerm = BinaryPrimitives.ReadUInt64BigEndian(span[16..]);
        var voteLength = BinaryPrimitives.ReadUInt16BigEndian(span[24..]);
        var vote = voteLength == 0 ? null : Encoding.UTF8.GetString(span.Slice(26, voteLength));
        _last = new HighWaterMark(term, vote, index, indexTerm);
        return _last;
    }

    /// <inheritdoc/>
    public void Write(HighWaterMark mark)
    {
        ArgumentNullException.ThrowIfNull(mark);
        if (mark == _last)
        {
            return;
        }

        var vote = mark.Vote is null ? [] : Encoding.UTF8.GetBytes(mark.Vote);
        var bytes = new byte[1 + 24 + 2 + vote.Length];
        bytes[0] = FormatVersion;
        var span = bytes.AsSpan(1);
        BinaryPrimitives.WriteUInt64BigEndian(span, mark.Term);
        BinaryPrimitives.WriteUInt64BigEndian(span[8..], mark.Index);
        BinaryPrimitives.WriteUInt64BigEndian(span[16..], mark.IndexTerm);
        BinaryPrimitives.WriteUInt16BigEndian(span[24..], (ushort)vote.Length);
        vote.CopyTo(span[26..]);
        WriteUntilTheTokenAnswers(bytes);
        _last = mark;
    }

    private void WriteUntilTheTokenAnswers(byte[] bytes)
    {
        var delay = FirstRetryDelay;
        for (var failures = 0; ; failures++)
        {
            try
            {
                token.WriteDataObject(ObjectName, bytes);
                if (failures > 0)
                {
                    Log.TokenBack(_logger, token.Description.Label, failures);
                }

                return;
            }
            catch (TokenUnavailableException exception)
            {
                if (failures == 0)
                {
                    Log.WaitingForToken(_logger, token.Description.Label, exception.Message);
                }

                if (stopping.WaitHandle.WaitOne(delay))
                {
                    throw new OperationCanceledException("the member is stopping while its token is unavailable; the rollback guard's mark was not written", exception, stopping);
                }

                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, LongestRetryDelay.Ticks));
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 3120, EventName = "HighWaterMarkWaitingForToken", Level = LogLevel.Error,
            Message = "Token '{Token}' is unavailable ({Reason}): this member cannot vouch for new log entries and stands still until the token answers again")]
        public static partial void WaitingForToken(ILogger logger, string token, string reason);

        [LoggerMessage(EventId = 3121, EventName = "HighWaterMarkTokenBack", Level = LogLevel.Warning,
            Message = "Token '{Token}' answers again after {Failures} failed attempts; this member carries on")]
        public static partial void TokenBack(ILogger logger, string token, int failures);
    }
}
