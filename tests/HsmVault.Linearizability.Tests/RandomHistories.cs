using HsmVault.Testing.Linearizability;

namespace HsmVault.Linearizability.Tests;

/// <summary>
/// Linearizable histories by construction: every operation gets a random interval and a random
/// linearization point inside it, and outputs come from running the sequential model in the
/// order of those points. A pending operation either took effect at its point or never did.
/// </summary>
public static class RandomHistories
{
    public static List<Operation<VaultInput, VaultOutput>> Vault(
        Random rng, int clients, int keys, int opsPerClient, double pendingRate, int maxSpan = 10, bool fewResets = false)
    {
        var planned = new List<(int Client, string Key, VaultInput Input, long Call, long Point, long Return, bool Pending, bool Effect)>();
        for (var client = 0; client < clients; client++)
        {
            long now = rng.Next(5);
            for (var i = 0; i < opsPerClient; i++)
            {
                var key = "user-" + rng.Next(keys);
                var call = now + rng.Next(3);
                var point = call + 1 + rng.Next(maxSpan);
                var ret = point + 1 + rng.Next(maxSpan);
                var pending = rng.NextDouble() < pendingRate;
                planned.Add((client, key, fewResets ? RandomInputWithFewResets(rng) : RandomInput(rng), call, point, ret, pending, !pending || rng.Next(2) == 0));

                // A client that timed out gives up at ret and carries on with a new request.
                now = ret + 1;
            }
        }

        var states = new Dictionary<string, VaultUserState>();
        var ops = new List<Operation<VaultInput, VaultOutput>>();
        foreach (var p in planned.OrderBy(p => p.Point).ThenBy(p => p.Client))
        {
            var state = states.GetValueOrDefault(p.Key, VaultUserState.Absent);
            var (output, next) = VaultModel.Apply(state, p.Input);
            if (p.Effect)
            {
                states[p.Key] = next;
            }

            ops.Add(p.Pending
                ? Operation.Pending<VaultInput, VaultOutput>(p.Client, p.Input, p.Call, p.Key)
                : Operation.Completed(p.Client, p.Input, p.Call, output!, p.Return, p.Key));
        }

        // Hand the checker the operations in call order, not in the order of the hidden points.
        return [.. ops.OrderBy(op => op.Call).ThenBy(op => op.ClientId)];
    }

    public static VaultInput RandomInput(Random rng) => rng.Next(100) switch
    {
        < 12 => V.Register(2 + rng.Next(4), replace: rng.Next(3) == 0),
        < 55 => V.Start,
        < 75 => V.Finish(rng.Next(4) == 0),
        < 95 => V.Status,
        _ => V.Delete,
    };

    /// <summary>Rare registrations with large limits and rare successes: long epochs full of charges.</summary>
    public static VaultInput RandomInputWithFewResets(Random rng) => rng.Next(200) switch
    {
        < 2 => V.Register(20 + rng.Next(30), replace: rng.Next(3) == 0),
        < 120 => V.Start,
        < 150 => V.Finish(rng.Next(20) == 0),
        _ => V.Status,
    };

    /// <summary>
    /// Makes one Charged answer repeat another's remaining count when both lie in a stretch of
    /// time no reset can reach: in every linearization they then fall in one epoch, where each
    /// charge leaves one guess fewer, so the history cannot be linearizable (a lost update).
    /// </summary>
    public static string? CorruptWithLostUpdate(List<Operation<VaultInput, VaultOutput>> ops, Random rng)
    {
        var charges = Enumerable.Range(0, ops.Count).Where(i => ops[i].Output is VaultOutput.Charged && !ops[i].IsPending).ToList();
        var pairs = new List<(int, int)>();
        foreach (var i in charges)
        {
            foreach (var j in charges)
            {
                if (i == j || ops[i].Key != ops[j].Key || ops[i].Output == ops[j].Output)
                {
                    continue;
                }

                var from = Math.Min(ops[i].Call, ops[j].Call);
                var to = Math.Max(ops[i].Return, ops[j].Return);
                var resetNearby = ops.Any(op => op.Key == ops[i].Key && MayReset(op) && op.Call <= to && op.Return >= from);
                if (!resetNearby)
                {
                    pairs.Add((i, j));
                }
            }
        }

        if (pairs.Count == 0)
        {
            return null;
        }

        var (a, b) = pairs[rng.Next(pairs.Count)];
        ops[b] = ops[b] with { Output = ops[a].Output };
        return $"lost update: {ops[b]} now repeats {ops[a]}";
    }

    /// <summary>Makes a Charged answer report more guesses left than any registration in the history allowed.</summary>
    public static string? CorruptWithImpossibleCount(List<Operation<VaultInput, VaultOutput>> ops, Random rng)
    {
        var charges = Enumerable.Range(0, ops.Count).Where(i => ops[i].Output is VaultOutput.Charged && !ops[i].IsPending).ToList();
        if (charges.Count == 0)
        {
            return null;
        }

        var maxLimit = ops.Select(op => op.Input).OfType<VaultInput.Register>().Max(r => r.Limit);
        var victim = charges[rng.Next(charges.Count)];
        ops[victim] = ops[victim] with { Output = V.Charged(maxLimit) };
        return $"impossible count: {ops[victim]}";
    }

    private static bool MayReset(Operation<VaultInput, VaultOutput> op) => op.IsPending
        ? op.Input is VaultInput.Register or VaultInput.FinishRecovery { CorrectPassword: true }
        : op.Output is VaultOutput.Registered or VaultOutput.Success;
}
