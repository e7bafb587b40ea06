using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Roam.Peers.Transport;

namespace Roam.Replication.Tests.Support;

/// <summary>
/// An ILogger that keeps every entry with its structured values, so tests assert on what the
/// listener decided (the <see cref="PeerRefusal"/> of a dropped connection), not on message text.
/// </summary>
public sealed class TestLog : ILogger
{
    private readonly ConcurrentQueue<LogEntry> _entries = new();

    public IReadOnlyList<LogEntry> Entries => [.. _entries];

    public IReadOnlyList<PeerRefusal> Refusals =>
        [.. _entries.Select(e => e.Values.GetValueOrDefault("Refusal")).OfType<PeerRefusal>()];

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        var values = state is IEnumerable<KeyValuePair<string, object?>> pairs
            ? pairs.GroupBy(p => p.Key).ToDictionary(g => g.Key, g => g.First().Value)
            : [];
        _entries.Enqueue(new LogEntry(logLevel, eventId, formatter(state, exception), values));
    }

    /// <summary>The listener logs a refusal on its own schedule; wait for it rather than sleep.</summary>
    public async Task<LogEntry> WaitForRefusalAsync(PeerRefusal refusal, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(10));
        while (true)
        {
            var entry = _entries.FirstOrDefault(e => e.Values.GetValueOrDefault("Refusal") is PeerRefusal r && r == refusal);
            if (entry is not null) return entry;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"no {refusal} refusal was logged; log: {string.Join(" | ", _entries.Select(e => e.Message))}");
            await Task.Delay(20);
        }
    }
}

public sealed record LogEntry(LogLevel Level, EventId EventId, string Message, IReadOnlyDictionary<string, object?> Values);
