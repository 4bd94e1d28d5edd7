using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using HsmVault.Crypto.Signatures;
using HsmVault.Protocol.V1;
using HsmVault.Testing.Daemons;
using HsmVault.Transparency;
using HsmVault.Transparency.Merkle;
using HsmVault.Transparency.Notes;
using HsmVault.Witness.Tests.Support;
using Xunit.Abstractions;
using WitnessClient = HsmVault.Protocol.V1.Witness.WitnessClient;

namespace HsmVault.Witness.Tests;

/// <summary>
/// The real <c>hsmvault-witness</c> as a child process under concurrent submitters and readers,
/// killed with kill -9 mid-load and restarted: every acknowledged submission is still there at
/// its position, every checkpoint anyone saw is consistent with the new one, and a replay of the
/// whole log over the API verifies.
/// </summary>
public sealed class WitnessCrashTests(ITestOutputHelper output) : IDisposable
{
    private const int Submitters = 8;
    private const int Readers = 4;
    private const int MaxSubmissionsEach = 60;
    private const int KillAfterAcknowledged = 240;
    private const int MaxReadsEach = 20_000;

    private readonly WitnessSetup _setup = new(namespaces: Submitters);
    private readonly string _configDirectory = Directory.CreateTempSubdirectory("hsmvault-witness-config-").FullName;

    [Fact]
    public async Task UnderLoad_KillNineAndRestart_LosesNothingAcknowledged_AndTheLogVerifies()
    {
        var config = DaemonConfigFile.Write(_setup.Settings(), Path.Combine(_configDirectory, "witness.json"));
        var acknowledged = new ConcurrentQueue<(FleetOperator FleetOperator, ulong Epoch, LoggedBundleResponse Response)>();
        var seenCheckpoints = new ConcurrentQueue<string>();
        var failures = new ConcurrentQueue<string>();
        var enough = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var firstAcknowledged = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var acknowledgedCount = 0;
        var reads = 0;
        var killed = false;
        var clock = Stopwatch.StartNew();

        await using (var child = await ChildDaemon.StartWitnessAsync(config))
        {
            using var channel = GrpcChannel.ForAddress(child.Address);
            var client = new WitnessClient(channel);
            var submitters = _setup.Operators.Select(op => Task.Run(async () =>
            {
                for (ulong epoch = 1; epoch <= MaxSubmissionsEach; epoch++)
                {
                    LoggedBundleResponse response;
                    try
                    {
                        response = await client.SubmitBundleAsync(Request(op, epoch));
                    }
                    catch (RpcException) when (Volatile.Read(ref killed))
                    {
                        return;
                    }

                    if (CheckResponse(op, epoch, response) is { } problem)
                    {
                        failures.Enqueue(problem);
                    }

                    acknowledged.Enqueue((op, epoch, response));
                    firstAcknowledged.TrySetResult();
                    if (Interlocked.Increment(ref acknowledgedCount) >= KillAfterAcknowledged)
                    {
                        enough.TrySetResult();
                    }
                }
            })).ToList();
            var readers = Enumerable.Range(0, Readers).Select(r => Task.Run(async () =>
            {
                // An empty log has no checkpoint yet (GetCheckpoint answers NOT_FOUND).
                await firstAcknowledged.Task.WaitAsync(ChildProcesses.Timeout);
                Checkpoint? previous = null;
                for (var i = 0; i < MaxReadsEach && !Volatile.Read(ref killed); i++)
                {
                    try
                    {
                        var note = (await client.GetCheckpointAsync(new GetCheckpointRequest())).Checkpoint;
                        var checkpoint = Checkpoint.Open(note, _setup.NoteKey, _setup.Origin);
                        if (previous is not null)
                        {
                            var proof = await client.GetConsistencyProofAsync(new GetConsistencyProofRequest { OldSize = previous.TreeSize, NewSize = checkpoint.TreeSize });
                            MerkleVerifier.VerifyConsistency(previous.TreeSize, checkpoint.TreeSize, previous.RootHash, checkpoint.RootHash, Hashes(proof.Proof));
                        }

                        seenCheckpoints.Enqueue(note);
                        previous = checkpoint;
                        if (!acknowledged.IsEmpty)
                        {
                            var entry = acknowledged.ElementAt(i % acknowledged.Count);
                            var bundle = await client.GetBundleAsync(new GetBundleRequest { Namespace = entry.FleetOperator.Namespace, Epoch = entry.Epoch });
                            VerifyIncluded(bundle);
                        }

                        Interlocked.Increment(ref reads);
                    }
                    catch (RpcException) when (Volatile.Read(ref killed))
                    {
                        return;
                    }
                    catch (Exception e) when (e is TransparencyException or RpcException)
                    {
                        failures.Enqueue($"reader {r}: {e.Message}");
                        return;
                    }
                }
            })).ToList();

            await Task.WhenAny(enough.Task, Task.WhenAll(submitters)).WaitAsync(ChildProcesses.Timeout);
            Volatile.Write(ref killed, true);
            await child.KillAsync();
            await Task.WhenAll(submitters.Concat(readers)).WaitAsync(ChildProcesses.Timeout);
        }

        var loadSeconds = clock.Elapsed.TotalSeconds;
        Assert.Empty(failures);
        Assert.True(acknowledgedCount >= KillAfterAcknowledged, $"only {acknowledgedCount} submissions were acknowledged before the kill");

        await using var restarted = await ChildDaemon.StartWitnessAsync(config);
        using var restartedChannel = GrpcChannel.ForAddress(restarted.Address);
        var after = new WitnessClient(restartedChannel);
        var latest = Checkpoint.Open((await after.GetCheckpointAsync(new GetCheckpointRequest())).Checkpoint, _setup.NoteKey, _setup.Origin);

        // Nothing acknowledged is missing or moved, and each is provable in the new checkpoint.
        foreach (var (op, epoch, response) in acknowledged)
        {
            var found = await after.GetBundleAsync(new GetBundleRequest { Namespace = op.Namespace, Epoch = epoch });
            Assert.Equal(response.Entry.LeafIndex, found.Entry.LeafIndex);
            Assert.Equal(response.Entry.Statement, found.Entry.Statement);
            Assert.Equal(response.Entry.WitnessSignature.Signature, found.Entry.WitnessSignature.Signature);
            Assert.Equal(latest, Checkpoint.Open(found.Checkpoint, _setup.NoteKey, _setup.Origin));
            MerkleVerifier.VerifyInclusion(found.Entry.LeafIndex, latest.TreeSize, MerkleHash.Leaf(found.Entry.Statement.Span), Hashes(found.InclusionProof), latest.RootHash);
            var signedThen = Checkpoint.Open(response.Checkpoint, _setup.NoteKey, _setup.Origin);
            Assert.Equal(response.Checkpoint, (await after.GetCheckpointAsync(new GetCheckpointRequest { TreeSize = signedThen.TreeSize })).Checkpoint);
        }

        // Every checkpoint a reader saw before the kill is consistent with the one after it.
        foreach (var note in seenCheckpoints.Distinct())
        {
            var seen = Checkpoint.Open(note, _setup.NoteKey, _setup.Origin);
            var proof = await after.GetConsistencyProofAsync(new GetConsistencyProofRequest { OldSize = seen.TreeSize, NewSize = latest.TreeSize });
            MerkleVerifier.VerifyConsistency(seen.TreeSize, latest.TreeSize, seen.RootHash, latest.RootHash, Hashes(proof.Proof));
        }

        // The auditor's replay of the whole log over the API: entries, and the checkpoint of every size.
        var entries = new List<LogEntry>();
        while ((ulong)entries.Count < latest.TreeSize)
        {
            var page = await after.GetEntriesAsync(new GetEntriesRequest { Start = (ulong)entries.Count, Count = 64 });
            entries.AddRange(page.Entries.Select(e => new LogEntry(e.LeafIndex, e.Statement.ToByteArray(), e.WitnessSignature.Signature.ToByteArray())));
        }

        var notes = new List<string>();
        for (ulong size = 1; size <= latest.TreeSize; size++)
        {
            notes.Add((await after.GetCheckpointAsync(new GetCheckpointRequest { TreeSize = size })).Checkpoint);
        }

        var report = LogAuditor.Replay(_setup.Origin, _setup.NoteKey, entries, notes);
        Assert.Equal(latest.TreeSize, report.TreeSize);
        Assert.Equal((int)latest.TreeSize, report.CheckpointsVerified);

        // The log holds the acknowledged entries plus at most the one in flight per submitter at the kill.
        var inFlightCommitted = (int)latest.TreeSize - acknowledged.Count;
        Assert.InRange(inFlightCommitted, 0, Submitters);

        // And it carries on: each submitter's next epoch is accepted (or, if its in-flight bundle
        // made it to disk before the kill, returned as already logged).
        foreach (var op in _setup.Operators)
        {
            var next = acknowledged.Where(a => a.FleetOperator == op).Select(a => a.Epoch).DefaultIfEmpty(0UL).Max() + 1;
            var response = await after.SubmitBundleAsync(Request(op, next));
            Assert.Null(CheckResponse(op, next, response));
        }

        output.WriteLine(
            $"{Submitters} submitters, {Readers} readers: {acknowledgedCount} submissions acknowledged and {reads} verified reads in {loadSeconds:F1} s " +
            $"({acknowledgedCount / loadSeconds:F0} acknowledged/s) before kill -9; after restart {latest.TreeSize} entries " +
            $"({inFlightCommitted} in flight at the kill had been committed), {seenCheckpoints.Distinct().Count()} checkpoints seen before the kill consistent, " +
            $"replay of {report.TreeSize} entries and {report.CheckpointsVerified} checkpoints verified");
    }

    public void Dispose()
    {
        _setup.Dispose();
        Directory.Delete(_configDirectory, recursive: true);
    }

    private static List<byte[]> Hashes(IEnumerable<ByteString> proof) => [.. proof.Select(p => p.ToByteArray())];

    private static SubmitBundleRequest Request(FleetOperator op, ulong epoch)
    {
        var bundle = op.Bundle(epoch);
        return new SubmitBundleRequest
        {
            Namespace = op.Namespace,
            Epoch = epoch,
            Bundle = ByteString.CopyFrom(bundle),
            OperatorSignature = new TaggedSignature { Algorithm = (uint)SignatureAlgorithm.EcdsaP256Sha256, Signature = ByteString.CopyFrom(op.Sign(epoch, bundle)) },
        };
    }

    private string? CheckResponse(FleetOperator op, ulong epoch, LoggedBundleResponse response)
    {
        try
        {
            var statement = WitnessStatement.Decode(response.Entry.Statement.Span);
            if (statement.Namespace != op.Namespace || statement.Epoch != epoch || !statement.Digest.AsSpan().SequenceEqual(SHA256.HashData(op.Bundle(epoch))))
            {
                return $"{op.Namespace} epoch {epoch}: the statement is for {statement.Namespace} epoch {statement.Epoch}";
            }

            if (!_setup.NoteKey.SigningKey.Verifies(response.Entry.Statement.Span, response.Entry.WitnessSignature.Signature.Span))
            {
                return $"{op.Namespace} epoch {epoch}: the witness signature does not verify";
            }

            VerifyIncluded(response);
            return null;
        }
        catch (TransparencyException e)
        {
            return $"{op.Namespace} epoch {epoch}: {e.Message}";
        }
    }

    private void VerifyIncluded(LoggedBundleResponse response)
    {
        var checkpoint = Checkpoint.Open(response.Checkpoint, _setup.NoteKey, _setup.Origin);
        MerkleVerifier.VerifyInclusion(response.Entry.LeafIndex, checkpoint.TreeSize, MerkleHash.Leaf(response.Entry.Statement.Span), Hashes(response.InclusionProof), checkpoint.RootHash);
    }
}
