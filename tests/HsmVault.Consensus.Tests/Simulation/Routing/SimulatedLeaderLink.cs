namespace HsmVault.Consensus.Tests.Simulation.Routing;

/// <summary>How a simulated link may misreport what the leader did (negative controls of the routing check).</summary>
public enum PlantedLinkBug
{
    /// <summary>The daemon's classification (<c>GrpcLeaderLink</c> over <c>PeerGrpcService</c>'s statuses).</summary>
    None,

    /// <summary>A lost answer is reported as "not the leader, nothing proposed", which invites the router to resend.</summary>
    LostAnswerLooksNotLeader,
}

/// <summary>
/// The <see cref="ILeaderLink"/> of one simulated member, over the simulation's seeded network: the request and the
/// answer each take a network delay and may be lost (by the drop rate, or a partition between the two members), and
/// the leader serves the call with its own router's <see cref="LeaderRouter.AcceptForwardedAsync"/> or
/// <see cref="LeaderRouter.AcceptReadIndexAsync"/>, as the daemon's peer service does. Failures come back typed as
/// <c>GrpcLeaderLink</c> types the statuses: NotLeader as FAILED_PRECONDITION, an unreachable leader or a refused
/// connection as UNAVAILABLE, and a call whose answer never came as DEADLINE_EXCEEDED, which may follow a write that
/// took effect (<see cref="OutcomeUnknownException"/>).
/// </summary>
internal sealed class SimulatedLeaderLink(Simulation simulation, string from, SimulatedClock clock) : ILeaderLink
{
    public async Task<byte[]> ForwardAsync(string leader, byte[] command, DateTimeOffset deadline, CancellationToken cancellationToken)
    {
        var result = await CallAsync(leader, deadline, router => router.AcceptForwardedAsync(command, cancellationToken), cancellationToken);
        simulation.LinkAnswered(write: true);
        return result;
    }

    public async Task<ulong> ReadIndexAsync(string leader, DateTimeOffset deadline, CancellationToken cancellationToken)
    {
        var index = await CallAsync(leader, deadline, router => router.AcceptReadIndexAsync(cancellationToken), cancellationToken);
        simulation.LinkAnswered(write: false);
        return index;
    }

    private async Task<T> CallAsync<T>(string to, DateTimeOffset deadline, Func<LeaderRouter, Task<T>> serve, CancellationToken cancellationToken)
    {
        var left = deadline - clock.GetUtcNow();
        var exchange = ExchangeAsync(to, serve);

        // The exchange goes on after a deadline cuts the call short (the leader still commits what it received):
        // whatever it throws then, other than an answer's refusal, must still fail the run.
        simulation.StartClientCall(async () =>
        {
            try
            {
                await exchange;
            }
            catch (Exception e) when (e is NotLeaderException or LeaderUnreachableException)
            {
            }
        });
        try
        {
            return await exchange.WaitAsync(left > TimeSpan.Zero ? left : TimeSpan.Zero, clock, cancellationToken);
        }
        catch (TimeoutException e)
        {
            throw new OutcomeUnknownException("DeadlineExceeded: no answer from the leader", e);
        }
    }

    private async Task<T> ExchangeAsync<T>(string to, Func<LeaderRouter, Task<T>> serve)
    {
        if (simulation.RaftOf(to) is null)
        {
            throw new LeaderUnreachableException($"Unavailable: no connection to {to}");
        }

        var delivered = await simulation.CarryAsync(from, to);
        if (!delivered || simulation.RaftOf(to) is not { } leader)
        {
            return await Never<T>();
        }

        Task<T> serving;
        try
        {
            serving = Task.FromResult(await serve(leader.Router));
        }
        catch (OperationCanceledException e)
        {
            // The leader's process died while serving: the caller sees its connection reset.
            throw new LeaderUnreachableException($"Unavailable: {to} went away while serving the call", e);
        }
        catch (Exception e) when (e is NotLeaderException or LeaderUnreachableException)
        {
            // A refusal travels back like an answer, and may be lost like one.
            serving = Task.FromException<T>(e);
        }

        if (!await simulation.CarryAsync(to, from))
        {
            if (simulation.Options.PlantedLinkBug == PlantedLinkBug.LostAnswerLooksNotLeader)
            {
                throw new NotLeaderException(null, "(planted bug) the answer was lost, reported as not the leader");
            }

            return await Never<T>();
        }

        return await serving;
    }

    /// <summary>A message that never arrives: the call runs into its deadline.</summary>
    private static Task<T> Never<T>() => new TaskCompletionSource<T>().Task;
}
