using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Roam.Control;

namespace Roam.Daemon.Jobs;

/// <summary>
/// Runs jobs in the background and remembers them (the most recent finished ones) for polling.
/// A job that fails or is cancelled runs its cleanup before it reports its final state, so a client
/// that sees "failed" also sees the half-made volume or file gone.
/// </summary>
internal sealed class JobManager(ILogger<JobManager> logger)
{
    private const int FinishedJobsKept = 100;

    private readonly ConcurrentDictionary<string, Job> _jobs = new(StringComparer.Ordinal);
    private int _nextId;
    private volatile bool _stopping;

    public int RunningCount => _jobs.Values.Count(j => !j.IsFinished);

    /// <summary>The running job of <paramref name="kind"/> on <paramref name="volume"/>, if any.</summary>
    public Job? FindRunning(string kind, string volume) =>
        _jobs.Values.FirstOrDefault(j => j.Kind == kind && j.Volume == volume && !j.IsFinished);

    public IReadOnlyList<Job> List() => [.. _jobs.Values.OrderBy(j => int.Parse(j.Id, System.Globalization.CultureInfo.InvariantCulture))];

    public Job Get(string id) =>
        _jobs.TryGetValue(id, out var job) ? job : throw new JobException(JobError.NotFound, $"no job with id '{id}'");

    /// <param name="run">The work; returns the allocated bytes of the result.</param>
    /// <param name="cleanup">Undoes a failed or cancelled run (removes partial output).</param>
    public Job Start(string kind, string volume, string path, string format, long bytesTotal,
        Func<Job, CancellationToken, Task<long>> run, Func<Job, Task> cleanup) =>
        Start(kind, volume, path, format, bytesTotal, null, async (job, ct) => (long?)await run(job, ct).ConfigureAwait(false), cleanup);

    /// <param name="prepare">Runs on the new job before its work starts (sets up what its view shows).</param>
    /// <param name="run">The work; returns the allocated bytes of the result, or null when that means nothing.</param>
    /// <param name="cleanup">Undoes a failed or cancelled run.</param>
    public Job Start(string kind, string volume, string path, string format, long bytesTotal, Action<Job>? prepare,
        Func<Job, CancellationToken, Task<long?>> run, Func<Job, Task> cleanup)
    {
        if (_stopping) throw new JobException(JobError.ShuttingDown, "roamd is shutting down");
        var id = Interlocked.Increment(ref _nextId).ToString(System.Globalization.CultureInfo.InvariantCulture);
        var job = new Job(id, kind, volume, path, format, bytesTotal);
        prepare?.Invoke(job);
        _jobs[id] = job;
        Log.JobStarted(logger, id, kind, volume, kind == "import" ? "from" : "to", path, format);
        job.Completion = Task.Run(() => RunAsync(job, run, cleanup));
        Prune();
        return job;
    }

    public Job Cancel(string id)
    {
        var job = Get(id);
        if (!job.IsFinished) job.Cancellation.Cancel();
        return job;
    }

    /// <summary>Cancels every running job and waits for their cleanup.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _stopping = true;
        var running = _jobs.Values.Where(j => !j.IsFinished).ToList();
        foreach (var job in running) job.Cancellation.Cancel();
        try { await Task.WhenAll(running.Select(j => j.Completion)).WaitAsync(cancellationToken).ConfigureAwait(false); }
        catch (OperationCanceledException) { }
    }

    private async Task RunAsync(Job job, Func<Job, CancellationToken, Task<long?>> run, Func<Job, Task> cleanup)
    {
        var token = job.Cancellation.Token;
        try
        {
            long? allocated = await run(job, token).ConfigureAwait(false);
            job.Succeed(allocated);
            var view = job.ToView();
            Log.JobSucceeded(logger, job.Id, view.BytesTotal, view.ElapsedSeconds);
            return;
        }
        catch (Exception ex)
        {
            // A killed tool fails with its own error; when we asked for the stop, it is a cancellation.
            bool cancelled = token.IsCancellationRequested;
            string message = cancelled ? "cancelled" : OneLine(ex.Message);
            if (cancelled) Log.JobCancelled(logger, job.Id);
            else if (ex is JobException or Roam.Daemon.Vms.VmException or IOException or Roam.Storage.Volumes.VolumeException
                or Roam.Replication.ReplicationException or Roam.Peers.Transport.PeerConnectException) Log.JobRefused(logger, job.Id, message); // expected: the message says it all
            else Log.JobFailed(logger, job.Id, message, ex);
            try { await cleanup(job).ConfigureAwait(false); }
            catch (Exception cleanupError)
            {
                Log.JobCleanupFailed(logger, job.Id, OneLine(cleanupError.Message));
                message += $" (and cleaning up failed: {OneLine(cleanupError.Message)})";
            }
            job.Finish(cancelled ? JobStates.Cancelled : JobStates.Failed, message);
        }
    }

    private void Prune()
    {
        var finished = _jobs.Values.Where(j => j.IsFinished).ToList();
        if (finished.Count <= FinishedJobsKept) return;
        foreach (var job in finished.OrderBy(j => int.Parse(j.Id, System.Globalization.CultureInfo.InvariantCulture)).Take(finished.Count - FinishedJobsKept))
            _jobs.TryRemove(job.Id, out _);
    }

    internal static string OneLine(string message) => message.ReplaceLineEndings(" ").Trim();
}
