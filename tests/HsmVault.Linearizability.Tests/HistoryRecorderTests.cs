using HsmVault.Testing.Linearizability;

namespace HsmVault.Linearizability.Tests;

public sealed class HistoryRecorderTests
{
    [Fact]
    public void Recorder_KeepsAnswersAndUnknownOutcomes_AndDropsDiscardedOperations()
    {
        long now = 0;
        var recorder = new HistoryRecorder<VaultInput, VaultOutput>(() => now += 10);

        var answered = recorder.Invoke(1, "alice", V.Register(3));
        var timedOut = recorder.Invoke(2, "alice", V.Start);
        var rejected = recorder.Invoke(3, "alice", V.Register(0));
        recorder.Invoke(4, "alice", V.Status);
        answered.Return(V.Registered);
        timedOut.Fail();
        rejected.Discard();

        var history = recorder.History();

        Assert.Equal([1, 2, 4], history.Select(op => op.ClientId));
        Assert.Equal((10, 50, V.Registered), (history[0].Call, history[0].Return, history[0].Output));
        Assert.True(history[1].IsPending);
        Assert.True(history[2].IsPending);
    }

    [Fact]
    public void CompletingAnOperationTwice_Throws()
    {
        var recorder = new HistoryRecorder<VaultInput, VaultOutput>();
        var op = recorder.Invoke(1, "alice", V.Status);
        op.Return(V.StatusOf(false, 0, false));

        Assert.Throws<InvalidOperationException>(() => op.Fail());
    }

    [Fact]
    public async Task ConcurrentClientsOfACorrectVault_RecordAHistoryThatPassesBothChecks()
    {
        var vault = new LockedVault();
        var recorder = new HistoryRecorder<VaultInput, VaultOutput>();
        var clients = Enumerable.Range(0, 8).Select(client => Task.Run(() =>
        {
            var rng = new Random(client);
            for (var i = 0; i < 300; i++)
            {
                var key = "user-" + rng.Next(3);
                var input = RandomHistories.RandomInput(rng);
                var op = recorder.Invoke(client, key, input);
                var output = vault.Apply(key, input);
                if (rng.Next(50) == 0)
                {
                    // The answer was lost on the way back: the operation happened, the client cannot know.
                    op.Fail();
                }
                else
                {
                    op.Return(output);
                }
            }
        }));
        await Task.WhenAll(clients);

        var report = VaultHistory.Verify(recorder.History(), TimeSpan.FromSeconds(30));

        Assert.True(report.Passed, report.ToString());
    }

    [Fact]
    public async Task AVaultThatLosesConcurrentCharges_IsCaughtFromTheRecordedHistory()
    {
        // Read-modify-write without a lock: both clients read 10 guesses left, then both write 9.
        var state = new VaultModel().Step(VaultUserState.Absent, V.Register(10), V.Registered).State;
        var recorder = new HistoryRecorder<VaultInput, VaultOutput>();
        recorder.Invoke(0, "alice", V.Register(10)).Return(V.Registered);
        using var bothRead = new Barrier(2);
        var clients = Enumerable.Range(1, 2).Select(client => Task.Run(() =>
        {
            var op = recorder.Invoke(client, "alice", V.Start);
            var read = Volatile.Read(ref state);
            bothRead.SignalAndWait();
            var (output, next) = VaultModel.Apply(read, V.Start);
            Volatile.Write(ref state, next);
            op.Return(output!);
        }));
        await Task.WhenAll(clients);

        var report = VaultHistory.Verify(recorder.History(), TimeSpan.FromSeconds(10));

        Assert.Equal(CheckOutcome.NotLinearizable, report.Linearizability.Outcome);
    }

    /// <summary>A correct in-memory vault: every operation applied atomically under one lock.</summary>
    private sealed class LockedVault
    {
        private readonly Lock _lock = new();
        private readonly Dictionary<string, VaultUserState> _users = [];

        public VaultOutput Apply(string key, VaultInput input)
        {
            lock (_lock)
            {
                var (output, next) = VaultModel.Apply(_users.GetValueOrDefault(key, VaultUserState.Absent), input);
                _users[key] = next;
                return output!;
            }
        }
    }
}
