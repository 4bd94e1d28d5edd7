using System.Diagnostics;

namespace HsmVault.Testing.Linearizability;

/// <summary>
/// Records a concurrent history from real clients (or a simulator): call
/// <see cref="Invoke"/> just before sending a request and complete the returned handle as soon as
/// the answer (or failure) arrives. Thread-safe.
/// </summary>
/// <remarks>
/// Real-time order is all the checker needs, so the call time must be taken before the request
/// can take effect and the return time after its answer was seen: then the true moment the
/// fleet applied the operation lies inside the recorded interval (Herlihy &amp; Wing 1990).
/// </remarks>
/// <typeparam name="TInput">What a client asks.</typeparam>
/// <typeparam name="TOutput">What a client is answered.</typeparam>
public sealed class HistoryRecorder<TInput, TOutput>
{
    private readonly Lock _lock = new();
    private readonly List<Operation<TInput, TOutput>?> _operations = [];
    private readonly Func<long> _clock;

    /// <summary>A recorder timed by <see cref="Stopwatch.GetTimestamp"/>.</summary>
    public HistoryRecorder()
        : this(Stopwatch.GetTimestamp)
    {
    }

    /// <summary>A recorder timed by <paramref name="clock"/>, which must never go backwards (a simulator's step counter).</summary>
    public HistoryRecorder(Func<long> clock) => _clock = clock;

    /// <summary>Records the call of <paramref name="input"/> by <paramref name="clientId"/> on <paramref name="key"/>, now.</summary>
    public RecordedOperation<TInput, TOutput> Invoke(int clientId, string key, TInput input)
    {
        lock (_lock)
        {
            // The clock is read under the lock so that indices and call times agree.
            _operations.Add(Operation.Pending<TInput, TOutput>(clientId, input, _clock(), key));
            return new RecordedOperation<TInput, TOutput>(this, _operations.Count - 1);
        }
    }

    /// <summary>
    /// The history so far, in call order. Operations still in flight are pending (outcome unknown);
    /// discarded ones are left out.
    /// </summary>
    public IReadOnlyList<Operation<TInput, TOutput>> History()
    {
        lock (_lock)
        {
            return [.. _operations.OfType<Operation<TInput, TOutput>>()];
        }
    }

    internal void Complete(int index, Func<Operation<TInput, TOutput>, long, Operation<TInput, TOutput>?> complete)
    {
        var now = _clock();
        lock (_lock)
        {
            var operation = _operations[index] ?? throw new InvalidOperationException("The operation was already discarded.");
            _operations[index] = complete(operation, now);
        }
    }
}

/// <summary>An operation in flight, recorded by <see cref="HistoryRecorder{TInput, TOutput}"/>. Complete it once.</summary>
/// <typeparam name="TInput">What a client asks.</typeparam>
/// <typeparam name="TOutput">What a client is answered.</typeparam>
public sealed class RecordedOperation<TInput, TOutput>
{
    private readonly HistoryRecorder<TInput, TOutput> _recorder;
    private readonly int _index;
    private int _completed;

    internal RecordedOperation(HistoryRecorder<TInput, TOutput> recorder, int index)
    {
        _recorder = recorder;
        _index = index;
    }

    /// <summary>The answer arrived: records it with the current time.</summary>
    public void Return(TOutput output)
    {
        MarkCompleted();
        _recorder.Complete(_index, (op, now) => op with { Output = output, Return = Math.Max(now, op.Call) });
    }

    /// <summary>
    /// The outcome is unknown (time-out, <c>Unavailable</c>, connection reset, crash): the write may
    /// still have happened, at any time from now on. The operation stays pending.
    /// </summary>
    public void Fail() => MarkCompleted();

    /// <summary>
    /// The request is known to have changed nothing (a validation error such as InvalidArgument,
    /// answered before anything was proposed): it is dropped from the history.
    /// </summary>
    public void Discard()
    {
        MarkCompleted();
        _recorder.Complete(_index, (_, _) => null);
    }

    private void MarkCompleted()
    {
        if (Interlocked.Exchange(ref _completed, 1) != 0)
        {
            throw new InvalidOperationException("A recorded operation is completed once.");
        }
    }
}
