using System.Globalization;
using Grpc.Core;
using HsmVault.Protocol.V1;
using HsmVault.Transparency;
using HsmVault.Transparency.Notes;

namespace HsmVault.Evidence;

/// <summary>What an audit of a witness's whole log found.</summary>
/// <param name="Log">The replay's result; null when the log did not verify.</param>
/// <param name="Failure">Why the log did not verify; null when it did.</param>
/// <param name="Epochs">Every logged (namespace, epoch) with its bundle digest, in log order.</param>
/// <param name="Equivocations">Second digests the witness refused for logged epochs: an operator signed two bundles for one epoch.</param>
public sealed record WitnessAuditReport(
    LogAuditReport? Log, string? Failure, IReadOnlyList<LoggedEpoch> Epochs, IReadOnlyList<Equivocation> Equivocations)
{
    /// <summary>Whether the log verified.</summary>
    public bool LogVerified => Failure is null;

    /// <summary>Writes the audit for a person: the log's verdict, each namespace's epochs and what changed, the equivocations.</summary>
    public void Write(TextWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.WriteLine(Log is { } log
            ? $"1. The log verifies: PASS — {log.TreeSize} entries replayed, tree root {Convert.ToHexStringLower(log.RootHash)}, " +
              $"{log.CheckpointsVerified} signed checkpoints each matching the replayed tree and consistent with the one before it, " +
              "every entry signed by the witness, one digest per epoch, epochs strictly increasing"
            : $"1. The log verifies: FAIL — {Failure}");
        writer.WriteLine("2. Epochs and what changed between them:");
        foreach (var group in Epochs.GroupBy(e => e.Namespace))
        {
            LoggedEpoch? previous = null;
            foreach (var epoch in group)
            {
                var change = previous is null ? "first epoch" : $"bundle changed from epoch {previous.Epoch}";
                writer.WriteLine($"   {epoch.Namespace} epoch {epoch.Epoch}: entry {epoch.LeafIndex}, bundle sha256 {Convert.ToHexStringLower(epoch.BundleDigest)}, logged {epoch.LoggedAt:u} ({change})");
                previous = epoch;
            }
        }

        writer.WriteLine(Equivocations.Count == 0
            ? "3. Equivocation attempts recorded by the witness: none"
            : $"3. Equivocation attempts recorded by the witness: {Equivocations.Count} — an operator signed a second, different bundle for an epoch already logged:");
        foreach (var e in Equivocations)
        {
            writer.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"   {e.Namespace} epoch {e.Epoch}: logged {Convert.ToHexStringLower(e.LoggedDigest.Span)}, attempted {Convert.ToHexStringLower(e.AttemptedDigest.Span)} at {DateTimeOffset.FromUnixTimeMilliseconds(e.ObservedAtUnixMs):u}"));
        }
    }
}

/// <summary>One logged epoch.</summary>
public sealed record LoggedEpoch(string Namespace, ulong Epoch, ulong LeafIndex, byte[] BundleDigest, DateTimeOffset LoggedAt);

/// <summary>
/// <c>hsmvault audit</c>: replays a witness's whole log with <see cref="LogAuditor"/> (every
/// entry's statement signed by a pinned witness key, the tree recomputed, every signed checkpoint
/// matching it and consistent with the one before), lists each namespace's epochs, and lists the
/// equivocation attempts the witness recorded, each checked against the digest the log holds.
/// </summary>
public static class WitnessLogAudit
{
    private const uint PageSize = 64;

    /// <summary>Audits the witness behind <paramref name="client"/>.</summary>
    /// <exception cref="RpcException">The witness did not answer.</exception>
    public static async Task<WitnessAuditReport> RunAsync(Witness.WitnessClient client, IReadOnlyList<NoteVerifierKey> witnessKeys, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(client);
        var equivocations = await EquivocationsAsync(client, cancellationToken).ConfigureAwait(false);
        string latestNote;
        try
        {
            latestNote = (await client.GetCheckpointAsync(new GetCheckpointRequest(), cancellationToken: cancellationToken).ConfigureAwait(false)).Checkpoint;
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.NotFound)
        {
            return new WitnessAuditReport(null, equivocations.Count == 0 ? null : "the log is empty, yet equivocations are recorded", [], equivocations);
        }

        NoteVerifierKey key;
        Checkpoint latest;
        try
        {
            (key, latest) = WitnessKeys.OpenCheckpoint(latestNote, witnessKeys);
        }
        catch (TransparencyException e)
        {
            return new WitnessAuditReport(null, e.Message, [], equivocations);
        }

        var entries = new List<LogEntry>();
        var epochs = new List<LoggedEpoch>();
        while ((ulong)entries.Count < latest.TreeSize)
        {
            var count = (uint)Math.Min(PageSize, latest.TreeSize - (ulong)entries.Count);
            var page = await client.GetEntriesAsync(new GetEntriesRequest { Start = (ulong)entries.Count, Count = count }, cancellationToken: cancellationToken).ConfigureAwait(false);
            if (page.Entries.Count == 0)
            {
                return new WitnessAuditReport(null, $"the witness served no entry at index {entries.Count} of a log of size {latest.TreeSize}", epochs, equivocations);
            }

            foreach (var entry in page.Entries)
            {
                entries.Add(new LogEntry(entry.LeafIndex, entry.Statement.ToByteArray(), entry.WitnessSignature?.Signature.ToByteArray() ?? []));
                if (TryDecode(entry.Statement.ToByteArray()) is { } statement)
                {
                    epochs.Add(new LoggedEpoch(statement.Namespace, statement.Epoch, entry.LeafIndex, statement.Digest,
                        DateTimeOffset.FromUnixTimeMilliseconds((long)Math.Min(statement.Timestamp, (ulong)long.MaxValue))));
                }
            }
        }

        var notes = new List<string>();
        for (ulong size = 1; size <= latest.TreeSize; size++)
        {
            try
            {
                notes.Add((await client.GetCheckpointAsync(new GetCheckpointRequest { TreeSize = size }, cancellationToken: cancellationToken).ConfigureAwait(false)).Checkpoint);
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.NotFound)
            {
                // The witness signed no checkpoint at this size; the next one is checked against the last it did sign.
            }
        }

        try
        {
            var log = LogAuditor.Replay(key.Name, key, entries, notes);
            var mismatch = equivocations.FirstOrDefault(e => !epochs.Any(l => l.Namespace == e.Namespace && l.Epoch == e.Epoch && l.BundleDigest.AsSpan().SequenceEqual(e.LoggedDigest.Span)));
            return mismatch is null
                ? new WitnessAuditReport(log, null, epochs, equivocations)
                : new WitnessAuditReport(log, $"the witness recorded an equivocation for {mismatch.Namespace} epoch {mismatch.Epoch} against a digest its log does not hold for that epoch", epochs, equivocations);
        }
        catch (TransparencyException e)
        {
            return new WitnessAuditReport(null, e.Message, epochs, equivocations);
        }
    }

    private static WitnessStatement? TryDecode(byte[] statement)
    {
        try
        {
            return WitnessStatement.Decode(statement);
        }
        catch (TransparencyException)
        {
            // The replay reports the entry that does not decode.
            return null;
        }
    }

    private static async Task<List<Equivocation>> EquivocationsAsync(Witness.WitnessClient client, CancellationToken cancellationToken)
    {
        var all = new List<Equivocation>();
        while (true)
        {
            var page = await client.ListEquivocationsAsync(
                new ListEquivocationsRequest { AfterId = all.Count == 0 ? 0 : all[^1].Id, Limit = 256 }, cancellationToken: cancellationToken).ConfigureAwait(false);
            all.AddRange(page.Equivocations);
            if (page.Equivocations.Count < 256)
            {
                return all;
            }
        }
    }
}
