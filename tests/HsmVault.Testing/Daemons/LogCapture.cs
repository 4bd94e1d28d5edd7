using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace HsmVault.Testing.Daemons;

/// <summary>One log event an in-process daemon wrote, with its exception (if any) rendered.</summary>
public sealed record CapturedLog(LogLevel Level, string Category, EventId EventId, string Message, string? Exception)
{
    /// <summary>The event as one line of text.</summary>
    public override string ToString() =>
        $"{Level} {Category}[{EventId.Id}] {Message}{(Exception is null ? "" : " " + Exception)}";
}

/// <summary>
/// A logger provider that keeps every event an in-process daemon writes (across its restarts),
/// so a test can fail on an unexpected error and search the text for secrets that must never
/// be logged.
/// </summary>
public sealed class LogCapture : ILoggerProvider
{
    private readonly ConcurrentQueue<CapturedLog> _events = new();

    /// <summary>Every event so far, in order.</summary>
    public IReadOnlyList<CapturedLog> Events => [.. _events];

    /// <summary>All events as text, one per line.</summary>
    public string Text => string.Join('\n', _events.Select(e => e.ToString()));

    /// <summary>Whether an event with <paramref name="eventId"/> was logged.</summary>
    public bool Contains(int eventId) => _events.Any(e => e.EventId.Id == eventId);

    /// <inheritdoc/>
    public ILogger CreateLogger(string categoryName) => new CaptureLogger(this, categoryName);

    /// <inheritdoc/>
    public void Dispose()
    {
    }

    private sealed class CaptureLogger(LogCapture owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            ArgumentNullException.ThrowIfNull(formatter);
            owner._events.Enqueue(new CapturedLog(logLevel, category, eventId, formatter(state, exception), exception?.ToString()));
        }
    }
}
