using System.Diagnostics;

namespace HsmVault.Testing.Linearizability;

/// <summary>
/// Decides whether a concurrent history is linearizable with respect to a sequential model.
/// </summary>
/// <remarks>
/// The search is Wing &amp; Gong's (1993): repeatedly pick an operation that is <em>minimal</em>
/// (no unplaced operation returned before it was called), apply it to the model, and backtrack
/// when none fits. Lowe ("Testing for linearizability", 2017) made it practical by memoizing
/// every (set of placed operations, model state) pair already explored; Porcupine (Athalye)
/// adds the doubly linked event list with dancing-links lift/unlift used here, and partitions
/// histories into independent keys. Pending operations (no answer) have no return event, so
/// they never constrain the order; the search succeeds once every completed operation is placed,
/// which leaves the pending ones either placed (took effect) or out (never happened).
/// Three reductions that keep the verdict exact (checked against brute force in the tests)
/// tame concurrent reads and time-outs: a minimal read that fits is placed without branching
/// (<see cref="IModel{TState, TInput, TOutput}.IsReadOnly"/>); pending operations with equal
/// inputs are placed in call order; and a pending operation is never placed where it would
/// change nothing. At each step the minimal completed operations are tried before the pending
/// ones, so a pending operation is placed only as early as some answer needs it: the verdict is
/// the same in either order, but a history full of lost calls finds its witness far sooner.
/// </remarks>
public static class LinearizabilityChecker
{
    /// <summary>
    /// Checks <paramref name="history"/> against <paramref name="model"/>, each independent part
    /// (see <see cref="IModel{TState, TInput, TOutput}.Partition"/>) in parallel.
    /// </summary>
    /// <param name="model">The sequential specification.</param>
    /// <param name="history">The operations, in any order.</param>
    /// <param name="timeBudget">After this long, unfinished parts are <see cref="CheckOutcome.Unknown"/>.</param>
    /// <param name="cancellationToken">Stops the search; unfinished parts are Unknown.</param>
    public static LinearizabilityResult<TInput, TOutput> Check<TState, TInput, TOutput>(
        IModel<TState, TInput, TOutput> model,
        IReadOnlyList<Operation<TInput, TOutput>> history,
        TimeSpan timeBudget,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(history);
        var clock = Stopwatch.StartNew();
        var parts = model.Partition(history).Where(p => p.Count > 0).ToArray();
        var results = new PartitionResult<TInput, TOutput>[parts.Length];
        Parallel.For(0, parts.Length, i =>
            results[i] = new PartitionSearch<TState, TInput, TOutput>(model, parts[i], clock, timeBudget, cancellationToken).Run());
        return new LinearizabilityResult<TInput, TOutput>(results, clock.Elapsed);
    }
}

/// <summary>The Wing &amp; Gong / Lowe search over one independent sub-history.</summary>
internal sealed class PartitionSearch<TState, TInput, TOutput>
{
    private static readonly EqualityComparer<TState> StateComparer = EqualityComparer<TState>.Default;

    // How many search steps pass between looks at the clock: Stopwatch is cheap but not free.
    private const int StepsPerClockCheck = 1024;

    private readonly IModel<TState, TInput, TOutput> _model;
    private readonly IReadOnlyList<Operation<TInput, TOutput>> _ops;
    private readonly Stopwatch _clock;
    private readonly TimeSpan _budget;
    private readonly CancellationToken _cancellationToken;

    // The event list: entries 0..n-1 are call and return events sorted by time, _head and _tail
    // are sentinels. Unlinked entries keep their own links so that relinking in LIFO order
    // restores the list exactly (Knuth's dancing links, as in Porcupine).
    private readonly int[] _next;
    private readonly int[] _prev;
    private readonly int[] _entryOp;
    private readonly bool[] _entryIsCall;
    private readonly int[] _returnEntryOfCall;
    private readonly int _head;
    private readonly int _tail;

    // For a pending operation, the pending operation with an equal input called just before it
    // (or -1); see Candidates.
    private readonly int[] _pendingPredecessor;

    // Completed operations the model declares to change no state (reads).
    private readonly bool[] _readOnly;

    private readonly ulong[] _placed;
    private ulong _placedHash;
    private readonly HashSet<CacheKey> _cache = new(new CacheKeyComparer());
    private readonly Stack<Frame> _stack = new();
    private readonly List<int> _order = [];
    private readonly int _completedCount;
    private int _placedCompleted;

    private int[] _bestOrder = [];
    private TState _bestState;

    public PartitionSearch(
        IModel<TState, TInput, TOutput> model,
        IReadOnlyList<Operation<TInput, TOutput>> ops,
        Stopwatch clock,
        TimeSpan budget,
        CancellationToken cancellationToken)
    {
        _model = model;
        _ops = ops;
        _clock = clock;
        _budget = budget;
        _cancellationToken = cancellationToken;
        _bestState = model.Init();

        var events = new List<(long Time, bool IsCall, int Op)>(ops.Count * 2);
        for (var i = 0; i < ops.Count; i++)
        {
            events.Add((ops[i].Call, true, i));
            if (!ops[i].IsPending)
            {
                events.Add((ops[i].Return, false, i));
                _completedCount++;
            }
        }

        // On equal times calls sort before returns: operations that merely touch are treated as
        // concurrent, which can only admit more orders (Porcupine does the same).
        events.Sort((a, b) =>
            a.Time != b.Time ? a.Time.CompareTo(b.Time)
            : a.IsCall != b.IsCall ? (a.IsCall ? -1 : 1)
            : a.Op.CompareTo(b.Op));

        var n = events.Count;
        _head = n;
        _tail = n + 1;
        _next = new int[n + 2];
        _prev = new int[n + 2];
        _entryOp = new int[n];
        _entryIsCall = new bool[n];
        _returnEntryOfCall = new int[n];
        var callEntryOfOp = new int[ops.Count];
        var returnEntryOfOp = new int[ops.Count];
        Array.Fill(returnEntryOfOp, -1);
        for (var e = 0; e < n; e++)
        {
            _entryOp[e] = events[e].Op;
            _entryIsCall[e] = events[e].IsCall;
            if (events[e].IsCall)
            {
                callEntryOfOp[events[e].Op] = e;
            }
            else
            {
                returnEntryOfOp[events[e].Op] = e;
            }

            _prev[e] = e == 0 ? _head : e - 1;
            _next[e] = e == n - 1 ? _tail : e + 1;
        }

        _next[_head] = n == 0 ? _tail : 0;
        _prev[_tail] = n == 0 ? _head : n - 1;
        for (var op = 0; op < ops.Count; op++)
        {
            _returnEntryOfCall[callEntryOfOp[op]] = returnEntryOfOp[op];
        }

        _placed = new ulong[(ops.Count + 63) / 64];

        _readOnly = [.. ops.Select(op => !op.IsPending && model.IsReadOnly(op.Input, op.Output!))];
        _pendingPredecessor = new int[ops.Count];
        Array.Fill(_pendingPredecessor, -1);
        var lastPendingWithInput = new Dictionary<InputKey, int>();
        foreach (var op in Enumerable.Range(0, ops.Count).Where(i => ops[i].IsPending).OrderBy(i => ops[i].Call).ThenBy(i => i))
        {
            var key = new InputKey(ops[op].Input);
            if (lastPendingWithInput.TryGetValue(key, out var predecessor))
            {
                _pendingPredecessor[op] = predecessor;
            }

            lastPendingWithInput[key] = op;
        }
    }

    public PartitionResult<TInput, TOutput> Run()
    {
        var state = _model.Init();
        var entry = _next[_head];

        // Which operations the scan of minimal ones offers: completed ones first, then, from the
        // head again, pending ones (see the remarks on the class).
        var pendingPass = false;
        long steps = 0;
        while (true)
        {
            if (_placedCompleted == _completedCount)
            {
                return Result(CheckOutcome.Linearizable, [.. _order], state);
            }

            if (++steps % StepsPerClockCheck == 0 && (_clock.Elapsed > _budget || _cancellationToken.IsCancellationRequested))
            {
                return Result(CheckOutcome.Unknown, _bestOrder, _bestState);
            }

            if (entry != _tail && _entryIsCall[entry])
            {
                // A call event ahead of every remaining return: its operation is minimal and may go next.
                var op = _entryOp[entry];
                if (_ops[op].IsPending != pendingPass)
                {
                    entry = _next[entry];
                    continue;
                }

                var candidates = Candidates(state, op);
                if (_readOnly[op] && candidates.Count == 1)
                {
                    // A partial-order reduction: a minimal completed read that fits here can be
                    // moved to the front of any linearization from here. Nothing unplaced returned
                    // before it was called, and since it changes no state wherever it stands, the
                    // operations it jumps over see the same states. So it goes next without
                    // branching, and if that fails, this whole node fails.
                    if (TryPlace(entry, state, candidates, 0, forced: true, ref state))
                    {
                        (entry, pendingPass) = (_next[_head], false);
                        continue;
                    }
                }
                else if (TryPlace(entry, state, candidates, 0, forced: false, ref state))
                {
                    (entry, pendingPass) = (_next[_head], false);
                    continue;
                }
                else
                {
                    entry = _next[entry];
                    continue;
                }
            }
            else if (!pendingPass)
            {
                // Every minimal completed operation was tried; now the pending ones.
                (entry, pendingPass) = (_next[_head], true);
                continue;
            }

            // A return event (or a forced read that failed before): the operation had to be placed
            // before anything called later, and nothing placeable remains before it. Undo the last
            // choice that had alternatives and try the next one.
            while (true)
            {
                if (_stack.Count == 0)
                {
                    return Result(CheckOutcome.NotLinearizable, _bestOrder, _bestState);
                }

                var frame = _stack.Pop();
                Unplace(frame);
                state = frame.Previous;
                if (frame.Forced)
                {
                    continue;
                }

                (entry, pendingPass) = TryPlace(frame.Entry, frame.Previous, frame.Candidates, frame.Index + 1, forced: false, ref state)
                    ? (_next[_head], false)
                    : (_next[frame.Entry], _ops[_entryOp[frame.Entry]].IsPending);
                break;
            }
        }
    }

    private IReadOnlyList<TState> Candidates(TState state, int op)
    {
        var operation = _ops[op];
        if (operation.IsPending)
        {
            // Two reductions of the pending-operation blow-up that keep the verdict exact:
            // - Pending operations with equal inputs are interchangeable (no answer, no deadline),
            //   and the one called earlier can stand in wherever a later one is placed; so they
            //   are placed in call order, and k of them give k + 1 cases instead of 2^k.
            // - Placing a pending operation where it would change nothing is the same as leaving
            //   it out, which is always allowed; so such placements are not tried.
            var predecessor = _pendingPredecessor[op];
            if (predecessor >= 0 && (_placed[predecessor >> 6] & (1UL << (predecessor & 63))) == 0)
            {
                return [];
            }

            var effects = _model.StepUnknown(state, operation.Input);
            return effects.Any(s => StateComparer.Equals(s, state)) ? [.. effects.Where(s => !StateComparer.Equals(s, state))] : effects;
        }

        var (ok, next) = _model.Step(state, operation.Input, operation.Output!);
        return ok ? [next] : [];
    }

    private bool TryPlace(int entry, TState previous, IReadOnlyList<TState> candidates, int start, bool forced, ref TState state)
    {
        var op = _entryOp[entry];
        for (var i = start; i < candidates.Count; i++)
        {
            var next = candidates[i];
            Flip(op);
            var key = new CacheKey(_placed, _placedHash, next);
            if (_cache.Contains(key))
            {
                // Lowe's memoization: this set of operations already led to this state once, and
                // that whole subtree failed.
                Flip(op);
                continue;
            }

            _cache.Add(key with { Placed = (ulong[])_placed.Clone() });
            _stack.Push(new Frame(entry, previous, candidates, i, forced));
            _order.Add(op);
            Unlink(entry);
            if (_returnEntryOfCall[entry] >= 0)
            {
                Unlink(_returnEntryOfCall[entry]);
                _placedCompleted++;
            }

            state = next;
            if (_order.Count > _bestOrder.Length)
            {
                _bestOrder = [.. _order];
                _bestState = next;
            }

            return true;
        }

        return false;
    }

    private void Unplace(Frame frame)
    {
        var returnEntry = _returnEntryOfCall[frame.Entry];
        if (returnEntry >= 0)
        {
            Relink(returnEntry);
            _placedCompleted--;
        }

        Relink(frame.Entry);
        _order.RemoveAt(_order.Count - 1);
        Flip(_entryOp[frame.Entry]);
    }

    private void Flip(int op)
    {
        _placed[op >> 6] ^= 1UL << (op & 63);

        // Order-independent hash of the placed set, kept incrementally (XOR of a mixed bit id).
        _placedHash ^= Mix((ulong)op);
    }

    private void Unlink(int e)
    {
        _next[_prev[e]] = _next[e];
        _prev[_next[e]] = _prev[e];
    }

    private void Relink(int e)
    {
        _next[_prev[e]] = e;
        _prev[_next[e]] = e;
    }

    private static ulong Mix(ulong x)
    {
        // SplitMix64's finalizer: spreads consecutive indices over all 64 bits.
        x += 0x9E3779B97F4A7C15UL;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9UL;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBUL;
        return x ^ (x >> 31);
    }

    private PartitionResult<TInput, TOutput> Result(CheckOutcome outcome, int[] order, TState state)
    {
        var prefix = order.Select(i => _ops[i]).ToArray();
        var unplaced = outcome == CheckOutcome.NotLinearizable ? Unplaced(order, state) : [];
        return new PartitionResult<TInput, TOutput>(
            _ops.Count > 0 ? _ops[0].Key : "",
            outcome,
            _ops,
            prefix,
            state?.ToString() ?? "null",
            unplaced,
            _cache.Count);
    }

    // The operations that real time allows right after the longest prefix: those called no later
    // than the earliest return among the completed operations left.
    private List<(Operation<TInput, TOutput>, string)> Unplaced(int[] order, TState state)
    {
        var inPrefix = new bool[_ops.Count];
        foreach (var i in order)
        {
            inPrefix[i] = true;
        }

        var rest = Enumerable.Range(0, _ops.Count).Where(i => !inPrefix[i]).ToArray();
        var earliestReturn = rest.Where(i => !_ops[i].IsPending).Select(i => _ops[i].Return).DefaultIfEmpty(Operation.NeverReturned).Min();
        var result = new List<(Operation<TInput, TOutput>, string)>();
        foreach (var i in rest.Where(i => _ops[i].Call <= earliestReturn))
        {
            var reason = _ops[i].IsPending ? "pending: may be left out, and placing it here did not help"
                : Candidates(state, i).Count == 0 ? "the model cannot give this answer in this state"
                : "fits here, but nothing fits after it";
            result.Add((_ops[i], reason));
        }

        return result;
    }

    private readonly record struct Frame(int Entry, TState Previous, IReadOnlyList<TState> Candidates, int Index, bool Forced);

    // Equality of inputs by EqualityComparer<TInput>.Default, usable as a dictionary key even when null.
    private readonly record struct InputKey(TInput Input);

    private readonly record struct CacheKey(ulong[] Placed, ulong PlacedHash, TState State);

    private sealed class CacheKeyComparer : IEqualityComparer<CacheKey>
    {
        public bool Equals(CacheKey x, CacheKey y) =>
            x.PlacedHash == y.PlacedHash
            && x.Placed.AsSpan().SequenceEqual(y.Placed)
            && StateComparer.Equals(x.State, y.State);

        public int GetHashCode(CacheKey key) =>
            HashCode.Combine(key.PlacedHash, key.State is null ? 0 : StateComparer.GetHashCode(key.State));
    }
}
