using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Roam.Nbd.Protocol;

namespace Roam.Testing;

/// <summary>
/// An ILogger that keeps every entry with its structured values, so tests can assert on what the
/// server decided (the <see cref="NbdRejection"/> of a dropped connection) rather than on message text.
/// </summary>
public sealed class TestLog : ILogger
{
    private readonly ConcurrentQueue<LogEntry> _entries = new();

    public IReadOnlyList<LogEntry> Entries => [.. _entries];

    /// <summary>The reasons of every connection the server dropped for a protocol error, in order.</summary>
    public IReadOnlyList<NbdRejection> Rejections =>
        [.. _entries.Select(e => e.Values.GetValueOrDefault("Rejection")).OfType<NbdRejection>()];

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        var values = state is IEnumerable<KeyValuePair<string, object?>> pairs
            ? pairs.GroupBy(p => p.Key).ToDictionary(g => g.Key, g => g.First().Value)
            : [];
        _entries.Enqueue(new LogEntry(logLevel, eventId, formatter(state, exception), values, exception));
    }
}

public sealed record LogEntry(LogLevel Level, EventId EventId, string Message, IReadOnlyDictionary<string, object?> Values, Exception? Exception);
