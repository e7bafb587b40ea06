using System.Diagnostics;
using Roam.Control;

namespace Roam.Daemon.Jobs;

/// <summary>One background import or export: its progress, outcome and cancellation.</summary>
internal sealed class Job(string id, string kind, string volume, string path, string format, long bytesTotal)
{
    private readonly Lock _gate = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private long _bytesDone;
    private string _state = JobStates.Running;
    private string? _error;
    private long? _allocatedBytes;
    private TimeSpan? _elapsed;

    public string Id { get; } = id;

    public string Kind { get; } = kind;

    public string Volume { get; } = volume;

    public string Path { get; } = path;

    public string Format { get; } = format;

    public long BytesTotal { get; } = bytesTotal;

    public CancellationTokenSource Cancellation { get; } = new();

    public Task Completion { get; set; } = Task.CompletedTask;

    public bool IsFinished
    {
        get { lock (_gate) return _state != JobStates.Running; }
    }

    /// <summary>Progress as bytes covered; it never goes backwards.</summary>
    public void Report(long bytesDone)
    {
        long current;
        do
        {
            current = Volatile.Read(ref _bytesDone);
            if (bytesDone <= current) return;
        }
        while (Interlocked.CompareExchange(ref _bytesDone, bytesDone, current) != current);
    }

    public void Succeed(long allocatedBytes)
    {
        Report(BytesTotal);
        Finish(JobStates.Succeeded, null, allocatedBytes);
    }

    public void Finish(string state, string? error, long? allocatedBytes = null)
    {
        lock (_gate)
        {
            if (_state != JobStates.Running) return;
            _state = state;
            _error = error;
            _allocatedBytes = allocatedBytes;
            _elapsed = _clock.Elapsed;
        }
    }

    public JobView ToView()
    {
        lock (_gate)
        {
            var elapsed = (_elapsed ?? _clock.Elapsed).TotalSeconds;
            long done = Volatile.Read(ref _bytesDone);
            return new JobView(Id, Kind, Volume, Path, Format, _state, done, BytesTotal,
                elapsed > 0 ? done / elapsed : 0, Math.Round(elapsed, 3), _allocatedBytes, _error);
        }
    }
}
