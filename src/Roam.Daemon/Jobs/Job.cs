using System.Diagnostics;
using Roam.Control;

namespace Roam.Daemon.Jobs;

/// <summary>One background import, export or migration: its progress, outcome and cancellation.</summary>
internal sealed class Job(string id, string kind, string volume, string path, string format, long bytesTotal)
{
    private readonly Lock _gate = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private long _bytesDone;
    private long _bytesTotal = bytesTotal;
    private string _state = JobStates.Running;
    private string? _error;
    private long? _allocatedBytes;
    private TimeSpan? _elapsed;
    private MigrationProgress? _migration;

    public string Id { get; } = id;

    public string Kind { get; } = kind;

    public string Volume { get; } = volume;

    public string Path { get; } = path;

    public string Format { get; } = format;

    public long BytesTotal => Volatile.Read(ref _bytesTotal);

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

    /// <summary>Marks this job a migration to <paramref name="peer"/> (its view gains the migration's fields).</summary>
    public void BeginMigration(string peer)
    {
        lock (_gate) _migration = new MigrationProgress(peer) { Phase = MigrationPhases.Preparing };
    }

    /// <summary>A migration's progress: its totals move (new writes add to what is left), so they are taken as they are.</summary>
    public void ReportMigration(MigrationView status)
    {
        lock (_gate)
        {
            if (_state != JobStates.Running) return;
            Volatile.Write(ref _bytesTotal, Math.Max(status.BytesTotal, status.BytesDone));
            Report(status.BytesDone);
            _migration = (_migration ?? new MigrationProgress(status.Peer)) with
            {
                Phase = status.Phase,
                BytesLeft = status.BytesLeft,
                BytesOnWire = status.BytesOnWire,
                EtaSeconds = status.EtaSeconds,
                Rate = status.BytesPerSecond,
            };
        }
    }

    /// <summary>The hand-over's outcome, shown once the migrate job ends.</summary>
    public void ReportHandOver(HandOverView handOver)
    {
        lock (_gate)
        {
            _migration = (_migration ?? new MigrationProgress(handOver.NewPrimary)) with
            {
                WritePauseMs = handOver.WritePauseMs,
                NewPrimary = handOver.NewPrimary,
                KeptReplica = handOver.KeptReplica,
            };
        }
    }

    public void Succeed(long? allocatedBytes)
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
            double rate = _migration?.Rate is { } r && _state == JobStates.Running ? r : elapsed > 0 ? done / elapsed : 0;
            var view = new JobView(Id, Kind, Volume, Path, Format, _state, done, BytesTotal,
                rate, Math.Round(elapsed, 3), _allocatedBytes, _error);
            if (_migration is not { } m) return view;
            return view with
            {
                Peer = m.Peer,
                Phase = m.Phase ?? MigrationPhases.Preparing,
                BytesLeft = m.BytesLeft,
                BytesOnWire = m.BytesOnWire,
                EtaSeconds = _state == JobStates.Running ? m.EtaSeconds : null,
                WritePauseMs = m.WritePauseMs,
                NewPrimary = m.NewPrimary,
                KeptReplica = m.KeptReplica,
            };
        }
    }

    private sealed record MigrationProgress(string Peer)
    {
        public string? Phase { get; init; }
        public long BytesLeft { get; init; }
        public long BytesOnWire { get; init; }
        public double? EtaSeconds { get; init; }
        public double Rate { get; init; }
        public double? WritePauseMs { get; init; }
        public string? NewPrimary { get; init; }
        public bool? KeptReplica { get; init; }
    }
}

internal static class JobKinds
{
    public const string Migrate = "migrate";
}
