using System.Collections.Concurrent;
using Grpc.Core;
using Grpc.Core.Interceptors;
using HsmVault.Protocol.V1;
using HsmVault.Testing.Daemons;

namespace HsmVault.Client.Tests;

/// <summary>
/// The client when the daemon is gone, or its answer is: every call fails with UNAVAILABLE, and a
/// StartRecovery whose answer was lost is asked again with the same request id, so the guess it
/// may have charged is not charged twice.
/// </summary>
public sealed class ServerDownTests : DaemonTest
{
    [Fact]
    public async Task EveryCall_WhileTheDaemonIsStopped_IsUnavailable_AndCostsNoGuess()
    {
        var password = Setup.NewPassword();
        var key = Setup.NewBackupKey();
        var registered = Daemon.CreateClient("alice");
        await registered.RegisterAsync(password, key);

        await Daemon.StopAsync();
        // One client knows the fleet's OPAQUE configuration already (so its recovery reaches
        // StartRecovery and its retries), the other must fetch it first.
        var calls = new (string Name, Func<Task> Call)[]
        {
            ("recover, configuration known", () => registered.RecoverAsync(password)),
            ("status", () => registered.GetStatusAsync()),
            ("delete", () => registered.DeleteAsync()),
            ("fleet info, new client", () => Daemon.CreateClient("alice").GetFleetInfoAsync()),
            ("register, new client", () => Daemon.CreateClient("bob").RegisterAsync(Setup.NewPassword(), Setup.NewBackupKey())),
        };
        foreach (var (name, call) in calls)
        {
            var refused = await Assert.ThrowsAsync<RpcException>(call);
            Assert.True(refused.StatusCode == StatusCode.Unavailable, $"{name}: {refused.Status}");
        }

        await Daemon.RestartAsync();
        var client = Daemon.CreateClient("alice");
        var status = await client.GetStatusAsync();
        var recovered = await client.RecoverAsync(password);

        Assert.Equal(status.GuessLimit, status.GuessesRemaining);
        Assert.Equal(RecoveryStatus.Recovered, recovered.Status);
        Assert.Equal(key, recovered.BackupKey);
        Assert.False((await Daemon.CreateClient("bob").GetStatusAsync()).Registered);
    }

    [Fact]
    public async Task Recover_WhenStartRecoverysAnswerIsLost_AsksAgainWithTheSameRequestId_AndIsChargedOnce()
    {
        var password = Setup.NewPassword();
        await Daemon.CreateClient("alice").RegisterAsync(password, Setup.NewBackupKey());
        var (client, loseFirstAnswer) = ClientLosingTheFirstStartRecoveryAnswer("alice");

        var wrong = await client.RecoverAsync(Setup.NewPassword());
        var status = await client.GetStatusAsync();

        Assert.Equal(2, loseFirstAnswer.RequestIds.Count);
        Assert.Equal(16, loseFirstAnswer.RequestIds.First().Length);
        Assert.Single(loseFirstAnswer.RequestIds.Select(Convert.ToHexString).Distinct());
        Assert.Equal(RecoveryStatus.WrongPassword, wrong.Status);
        Assert.Equal((int)status.GuessLimit - 1, wrong.GuessesRemaining);
        Assert.Equal(status.GuessLimit - 1, status.GuessesRemaining);
    }

    [Fact]
    public async Task Recover_WithTheRightPassword_AfterALostStartRecoveryAnswer_StillRecoversTheKey()
    {
        var password = Setup.NewPassword();
        var key = Setup.NewBackupKey();
        await Daemon.CreateClient("alice").RegisterAsync(password, key);
        var (client, loseFirstAnswer) = ClientLosingTheFirstStartRecoveryAnswer("alice");

        var recovered = await client.RecoverAsync(password);

        Assert.Equal(2, loseFirstAnswer.RequestIds.Count);
        Assert.Equal(RecoveryStatus.Recovered, recovered.Status);
        Assert.Equal(key, recovered.BackupKey);
    }

    private (VaultClient Client, LoseFirstStartRecoveryAnswer Fault) ClientLosingTheFirstStartRecoveryAnswer(string user)
    {
        var fault = new LoseFirstStartRecoveryAnswer();
        var jwt = Setup.Mint(user);
        return (new VaultClient(Daemon.CreateChannel().Intercept(fault), _ => ValueTask.FromResult(jwt)), fault);
    }

    /// <summary>
    /// Lets the first StartRecovery reach the daemon and be answered, then loses the answer on the
    /// way back (UNAVAILABLE): a fault of the network between them that a real daemon cannot be
    /// made to produce on cue. Records every StartRecovery's request id.
    /// </summary>
    private sealed class LoseFirstStartRecoveryAnswer : Interceptor
    {
        private int _starts;

        public ConcurrentQueue<byte[]> RequestIds { get; } = new();

        public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(
            TRequest request, ClientInterceptorContext<TRequest, TResponse> context, AsyncUnaryCallContinuation<TRequest, TResponse> continuation)
        {
            var call = continuation(request, context);
            if (request is not StartRecoveryRequest start)
            {
                return call;
            }

            RequestIds.Enqueue(start.RequestId.ToByteArray());
            return Interlocked.Increment(ref _starts) == 1
                ? new AsyncUnaryCall<TResponse>(LoseAsync(call.ResponseAsync), call.ResponseHeadersAsync, call.GetStatus, call.GetTrailers, call.Dispose)
                : call;
        }

        private static async Task<TResponse> LoseAsync<TResponse>(Task<TResponse> answer)
        {
            await answer;
            throw new RpcException(new Status(StatusCode.Unavailable, "the answer was lost on the way back (test fault)"));
        }
    }
}
