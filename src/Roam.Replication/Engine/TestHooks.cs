using Roam.Replication.HandOver;

namespace Roam.Replication.Engine;

/// <summary>Fault injection for tests: a stalled target stops reading its connections.</summary>
internal sealed class TestHooks
{
    private volatile TaskCompletionSource? _stall;

    /// <summary>Source side: a pause before each resync region (to catch a copy half-way).</summary>
    public TimeSpan ResyncPause { get; set; }

    /// <summary>Source side: the hand-over fails right after this step has been done.</summary>
    public VolumeHandOverStep? FailAfter { get; set; }

    /// <summary>Source side: the hand-over stops dead right after this step, as a process crash would (nothing cleaned up, nothing resolved).</summary>
    public VolumeHandOverStep? CrashAfter { get; set; }

    /// <summary>Source side: awaited just before that simulated crash (e.g. until the destination has acted on HandOver).</summary>
    public Func<Task>? BeforeCrash { get; set; }

    /// <summary>Target side: answer a HandOver frame with an Error (the promotion never happens).</summary>
    public bool RefuseHandOver { get; set; }

    /// <summary>Target side: promote, then drop the connection instead of acknowledging the HandOver.</summary>
    public bool DropBeforeHandOverAck { get; set; }

    public Task TargetGate => _stall?.Task ?? Task.CompletedTask;

    public void StallTargets() => _stall = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Resume() => Interlocked.Exchange(ref _stall, null)?.TrySetResult();
}
