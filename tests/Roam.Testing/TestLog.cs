using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Roam.Nbd.Protocol;

namespace Roam.Testing;

/// <summary>
/// An ILogger that keeps every entry with its structured values, so tests can assert on what the
/// code decided (the <see cref="NbdRejection"/> of a dropped NBD connection, a peer's refusal) rather than on message text.
/// </summary>
public sealed class TestLog : ILogger
{
    private readonly ConcurrentQueue<LogEntry> _entries = new();

    public IReadOnlyList<LogEntry> Entries => [.. _entries];

    /// <summary>The reasons of every connection the server dropped for a protocol error, in order.</summary>
    public IReadOnlyList<NbdRejection> Rejections => ValuesOf<NbdRejection>("Rejection");

    /// <summary>Every logged value named <paramref name="key"/> of type <typeparamref name="T"/>, in order.</summary>
    public IReadOnlyList<T> ValuesOf<T>(string key) => [.. _entries.Select(e => e.Values.GetValueOrDefault(key)).OfType<T>()];

    /// <summary>Code logs on its own schedule: waits for the first entry that matches rather than sleeping.</summary>
    public async Task<LogEntry> WaitForAsync(Func<LogEntry, bool> match, string what, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(10));
        while (true)
        {
            if (_entries.FirstOrDefault(match) is { } entry) return entry;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"{what} was not logged; log: {string.Join(" | ", _entries.Select(e => e.Message))}");
            await Task.Delay(20).ConfigureAwait(false);
        }
    }

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
