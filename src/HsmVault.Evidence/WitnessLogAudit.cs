using System.Globalization;
using Grpc.Core;
using HsmVault.Protocol.V1;
using HsmVault.Transparency;
using HsmVault.Transparency.Bundles;
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
                var change = previous is null ? "first epoch" : BundleChanges.Describe(previous, epoch);
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
/// <param name="Namespace">The namespace.</param>
/// <param name="Epoch">The epoch.</param>
/// <param name="LeafIndex">Its entry in the log.</param>
/// <param name="BundleDigest">SHA-256 of the logged bundle.</param>
/// <param name="LoggedAt">The witness's timestamp.</param>
/// <param name="Bundle">The logged bundle decoded; null when the logged bytes are not a validation bundle.</param>
public sealed record LoggedEpoch(string Namespace, ulong Epoch, ulong LeafIndex, byte[] BundleDigest, DateTimeOffset LoggedAt, ValidationBundle? Bundle = null);

/// <summary>What changed between two logged bundles of a namespace, for a person auditing key rotations.</summary>
public static class BundleChanges
{
    /// <summary>"fleet 'a' -> 'b'; OPAQUE key changed; member m3 added; ..." or "no key or member changed".</summary>
    public static string Describe(LoggedEpoch previous, LoggedEpoch current)
    {
        ArgumentNullException.ThrowIfNull(previous);
        ArgumentNullException.ThrowIfNull(current);
        if (previous.Bundle is not { } before || current.Bundle is not { } after)
        {
            return $"bundle changed from epoch {previous.Epoch}; not a validation bundle, so its keys cannot be compared";
        }

        var changes = new List<string>();
        if (before.FleetId != after.FleetId)
        {
            changes.Add($"new fleet '{after.FleetId}' (was '{before.FleetId}')");
        }

        if (!before.OpaqueServerKey.AsSpan().SequenceEqual(after.OpaqueServerKey))
        {
            changes.Add($"OPAQUE server key {Short(before.OpaqueServerKey)} -> {Short(after.OpaqueServerKey)}");
        }

        if (before.FleetSigningKey != after.FleetSigningKey)
        {
            changes.Add($"fleet signing key {before.FleetSigningKey.Fingerprint()} -> {after.FleetSigningKey.Fingerprint()}");
        }

        foreach (var member in after.Members.Where(m => before.Members.All(b => b.MemberId != m.MemberId)))
        {
            changes.Add($"member '{member.MemberId}' added ({member.Endpoint})");
        }

        foreach (var member in before.Members.Where(m => after.Members.All(a => a.MemberId != m.MemberId)))
        {
            changes.Add($"member '{member.MemberId}' removed");
        }

        foreach (var member in after.Members.Where(m => before.Members.Any(b => b.MemberId == m.MemberId)))
        {
            if (before.MemberIdentityKey(member.MemberId) != after.MemberIdentityKey(member.MemberId))
            {
                changes.Add($"member '{member.MemberId}' identity key changed");
            }

            if (before.Members.First(b => b.MemberId == member.MemberId).Endpoint != member.Endpoint)
            {
                changes.Add($"member '{member.MemberId}' endpoint -> {member.Endpoint}");
            }
        }

        if (before.Opaque != after.Opaque)
        {
            changes.Add($"OPAQUE configuration (Argon2id m={before.Opaque.Argon2MemoryKib} t={before.Opaque.Argon2Iterations} p={before.Opaque.Argon2Parallelism}"
                + $" -> m={after.Opaque.Argon2MemoryKib} t={after.Opaque.Argon2Iterations} p={after.Opaque.Argon2Parallelism}, or the context)");
        }

        if (!before.EvidenceDigest.AsSpan().SequenceEqual(after.EvidenceDigest))
        {
            changes.Add("deployment evidence changed");
        }

        return changes.Count == 0 ? $"from epoch {previous.Epoch}: no key or member changed (renewed until {after.NotAfter:u})" : $"from epoch {previous.Epoch}: {string.Join("; ", changes)}";
    }

    private static string Short(byte[] key) => Convert.ToHexStringLower(key)[..16] + "…";
}

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
                        DateTimeOffset.FromUnixTimeMilliseconds((long)Math.Min(statement.Timestamp, (ulong)long.MaxValue)), TryDecodeBundle(entry.Bundle.Span)));
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

    private static ValidationBundle? TryDecodeBundle(ReadOnlySpan<byte> bundle)
    {
        try
        {
            return BundleCodec.Decode(bundle);
        }
        catch (TransparencyException)
        {
            // Namespaces may log other things than validation bundles; the audit says it cannot compare them.
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
