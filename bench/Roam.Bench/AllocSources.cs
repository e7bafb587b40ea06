using System.Diagnostics.Tracing;

namespace Roam.Bench;

/// <summary>
/// roam-bench alloc-sources plain|replicated read|write: where the bytes that layer-allocations reports come from.
/// Runs 200 000 requests of <see cref="LayerAllocations"/> while listening to the runtime's allocation ticks (one
/// sample per ~100 KB allocated, with the type that crossed the mark), and prints the types by number of samples.
/// </summary>
internal sealed class AllocSources : EventListener
{
    private readonly Dictionary<string, long> _samples = [];

    protected override void OnEventSourceCreated(EventSource source)
    {
        if (source.Name == "Microsoft-Windows-DotNETRuntime") EnableEvents(source, EventLevel.Verbose, (EventKeywords)0x1); // GC keyword
    }

    protected override void OnEventWritten(EventWrittenEventArgs e)
    {
        if (e.EventName?.StartsWith("GCAllocationTick", StringComparison.Ordinal) != true || e.PayloadNames is null || e.Payload is null) return;
        int at = e.PayloadNames.IndexOf("TypeName");
        if (at < 0 || e.Payload[at] is not string type) return;
        lock (_samples) _samples[type] = _samples.GetValueOrDefault(type) + 1;
    }

    public static async Task<int> RunAsync(string stack, string operation)
    {
        const int Requests = 200_000;
        var bench = new LayerAllocations { Stack = stack };
        bench.Setup();
        try
        {
            using var listener = new AllocSources();
            for (int i = 0; i < Requests; i++)
                await (operation == "write" ? bench.Write() : bench.Read()).ConfigureAwait(false);
            Console.WriteLine($"{Requests} {operation}s ({stack}); allocation samples (~100 KB each) by type:");
            lock (listener._samples)
                foreach (var (type, samples) in listener._samples.OrderByDescending(kv => kv.Value).Take(15))
                    Console.WriteLine($"{samples,8}  {type}");
        }
        finally { bench.Cleanup(); }
        return 0;
    }
}
