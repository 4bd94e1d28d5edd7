namespace HsmVault.Consensus.Tests.Simulation.Routing;

/// <summary>
/// Deterministic async for the simulator, so that production async code (<see cref="LeaderRouter"/>) runs inside it:
/// a synchronization context whose posts wait in one queue, and a clock (<see cref="Clock"/>) that is the simulation's
/// tick. Nothing runs on another thread; continuations and timers run only when the simulation calls
/// <see cref="RunUntilIdle"/>, in the order they were posted or fell due, so a seed replays exactly.
/// </summary>
/// <remarks>
/// The simulated members' completions run their continuations inline, and the simulation runs members' Readies and
/// crashes inside <see cref="Deferring"/>: an await that captured this context then resumes through <see cref="Post"/>,
/// after the Ready, not inside it. (Completions that force asynchronous continuations would resume on the thread
/// pool, as would code awaiting with <c>ConfigureAwait(false)</c>; <see cref="Post"/> and <see cref="RunUntilIdle"/>
/// refuse another thread rather than let a run depend on timing.)
/// </remarks>
internal sealed class SimulatedAsync : SynchronizationContext
{
    private readonly Queue<(SendOrPostCallback Callback, object? State)> _posted = new();
    private readonly int _thread = Environment.CurrentManagedThreadId;

    public SimulatedAsync(Func<long> now, TimeSpan tick) => Clock = new SimulatedClock(now, tick);

    /// <summary>The simulation's time: <see cref="SimulatedClock.Tick"/> per tick.</summary>
    public SimulatedClock Clock { get; }

    public override void Post(SendOrPostCallback d, object? state)
    {
        if (Environment.CurrentManagedThreadId != _thread)
        {
            // Taking it would make the run depend on when that thread got there.
            throw new InvalidOperationException("A continuation was posted to the simulation from another thread.");
        }

        _posted.Enqueue((d, state));
    }

    /// <summary>
    /// Runs <paramref name="action"/> (a member's Ready, a crash) with no context current: whatever it completes then
    /// resumes through <see cref="Post"/>, after it, rather than inline inside it.
    /// </summary>
    public static void Deferring(Action action)
    {
        var context = Current;
        SetSynchronizationContext(null);
        try
        {
            action();
        }
        finally
        {
            SetSynchronizationContext(context);
        }
    }

    public override void Send(SendOrPostCallback d, object? state) =>
        throw new NotSupportedException("The simulation runs everything in order on one thread; nothing may wait for it.");

    public override SynchronizationContext CreateCopy() => this;

    /// <summary>Fires the timers due at this tick and runs every continuation they and earlier ones posted, until none is left.</summary>
    public void RunUntilIdle()
    {
        if (Environment.CurrentManagedThreadId != _thread || Current != this)
        {
            throw new InvalidOperationException("Simulated async code ran outside the simulation's thread or context.");
        }

        do
        {
            while (_posted.TryDequeue(out var work))
            {
                work.Callback(work.State);
            }
        }
        while (Clock.FireDue() || _posted.Count > 0);
    }
}

/// <summary>A <see cref="TimeProvider"/> whose time moves only with the simulation's ticks; its timers fire in <see cref="SimulatedAsync.RunUntilIdle"/>.</summary>
internal sealed class SimulatedClock(Func<long> now, TimeSpan tick) : TimeProvider
{
    private static readonly DateTimeOffset Epoch = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private readonly PriorityQueue<Timer, (long Due, long Sequence)> _timers = new();
    private long _sequence;

    /// <summary>How much time one tick stands for.</summary>
    public TimeSpan Tick { get; } = tick;

    public override DateTimeOffset GetUtcNow() => Epoch + (Tick * now());

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public override long GetTimestamp() => Tick.Ticks * now();

    public override TimeZoneInfo LocalTimeZone => TimeZoneInfo.Utc;

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = new Timer(this, callback, state);
        timer.Change(dueTime, period);
        return timer;
    }

    /// <summary>Fires every timer due by now, earliest first; true if any fired.</summary>
    public bool FireDue()
    {
        var fired = false;
        while (_timers.TryPeek(out var timer, out var when) && when.Due <= now())
        {
            _timers.Dequeue();
            if (timer.Generation != when.Sequence)
            {
                continue; // changed or disposed since it was scheduled
            }

            fired = true;
            if (timer.Period > TimeSpan.Zero)
            {
                Schedule(timer, timer.Period);
            }
            else
            {
                timer.Generation = -1;
            }

            timer.Fire();
        }

        return fired;
    }

    private void Schedule(Timer timer, TimeSpan after)
    {
        // Never in the past, and at least at the next pass: a zero delay fires in this tick's RunUntilIdle.
        var ticks = (long)Math.Ceiling(Math.Max(0, after.Ticks) / (double)Tick.Ticks);
        timer.Generation = ++_sequence;
        _timers.Enqueue(timer, (now() + ticks, timer.Generation));
    }

    private sealed class Timer(SimulatedClock clock, TimerCallback callback, object? state) : ITimer
    {
        public long Generation { get; set; } = -1;

        public TimeSpan Period { get; private set; }

        public void Fire() => callback(state);

        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            Period = period == Timeout.InfiniteTimeSpan ? TimeSpan.Zero : period;
            if (dueTime == Timeout.InfiniteTimeSpan)
            {
                Generation = -1;
            }
            else
            {
                clock.Schedule(this, dueTime);
            }

            return true;
        }

        public void Dispose() => Generation = -1;

        public ValueTask DisposeAsync()
        {
            Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
