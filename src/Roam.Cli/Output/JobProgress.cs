using Roam.Cli.Commands;
using Roam.Control;
using Spectre.Console;

namespace Roam.Cli.Output;

/// <summary>
/// Follows an import, export or migrate job to its end by polling roamd, with a progress bar (bytes, rate,
/// ETA) at a terminal. Ctrl+C cancels the job in roamd and waits for its cleanup.
/// </summary>
internal static class JobProgress
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(200);

    /// <param name="cancelOnInterrupt">Ctrl+C cancels the job (else it only stops following it: `roam job watch`).</param>
    public static async Task<JobView> FollowAsync(CliContext context, JobView job, string label, CancellationToken cancellationToken,
        bool cancelOnInterrupt = true)
    {
        try
        {
            if (!context.ShowProgress) return await PollUntilFinishedAsync(context, job, null, cancellationToken).ConfigureAwait(false);
            return await context.Console.Progress()
                .AutoClear(false)
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(),
                    new DownloadedColumn(), new TransferSpeedColumn(), new RemainingTimeColumn())
                .StartAsync(async progress =>
                {
                    var task = progress.AddTask(Markup.Escape(label), maxValue: Math.Max(1, job.BytesTotal));
                    var final = await PollUntilFinishedAsync(context, job, task, cancellationToken, label).ConfigureAwait(false);
                    if (final.State == JobStates.Succeeded) task.Value = task.MaxValue;
                    task.StopTask();
                    return final;
                }).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested && cancelOnInterrupt)
        {
            return await CancelAsync(context, job).ConfigureAwait(false);
        }
    }

    private static async Task<JobView> PollUntilFinishedAsync(CliContext context, JobView job, ProgressTask? task, CancellationToken cancellationToken,
        string? label = null)
    {
        while (true)
        {
            if (task is not null)
            {
                // A migration's total moves (new writes add to what is left), and its phase is worth seeing.
                task.MaxValue = Math.Max(1, Math.Max(job.BytesTotal, job.BytesDone));
                task.Value = job.BytesDone;
                if (job.Phase is { } phase)
                    task.Description = Markup.Escape($"{label}: {phase}, {Sizes.Format(job.BytesLeft ?? 0)} left, {Sizes.Format(job.BytesOnWire ?? 0)} sent");
            }
            if (JobStates.IsFinished(job.State)) return job;
            await Task.Delay(PollInterval, cancellationToken).ConfigureAwait(false);
            job = await context.Client.GetAsync($"v1/jobs/{job.Id}", Roam.Control.ControlJsonContext.Default.JobView, cancellationToken).ConfigureAwait(false);
        }
    }

    private static async Task<JobView> CancelAsync(CliContext context, JobView job)
    {
        await context.Error.WriteLineAsync($"roam: cancelling job {job.Id}...").ConfigureAwait(false);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(12));
        job = await context.Client.PostAsync($"v1/jobs/{job.Id}/cancel", Roam.Control.ControlJsonContext.Default.JobView, timeout.Token).ConfigureAwait(false);
        return await PollUntilFinishedAsync(context, job, null, timeout.Token).ConfigureAwait(false);
    }
}
