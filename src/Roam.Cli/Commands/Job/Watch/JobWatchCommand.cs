using System.CommandLine;
using Roam.Cli.Api;
using Roam.Cli.Output;
using Roam.Control;

namespace Roam.Cli.Commands.Job.Watch;

internal sealed class JobWatchCommand : Command
{
    private readonly Argument<string> _idArgument = new("id") { Description = "The job's id (from roam job list)" };

    public JobWatchCommand(CliEnvironment environment)
        : base("watch", "Follow a job until it ends; exits 0 if it succeeded, 1 if it failed or was cancelled (Ctrl+C stops watching, not the job)")
    {
        Arguments.Add(_idArgument);
        SetAction(environment.Action(ExecuteAsync));
    }

    private async Task<int> ExecuteAsync(CliContext context, ParseResult parseResult, CancellationToken cancellationToken)
    {
        var id = parseResult.GetValue(_idArgument)!;
        var job = await context.Client.GetAsync($"v1/jobs/{ControlClient.Segment(id)}", ControlJsonContext.Default.JobView, cancellationToken).ConfigureAwait(false);
        string label = job.Kind == "migrate" ? $"migrate {job.Volume} to {job.Peer}" : $"{job.Kind} {job.Volume}";
        job = await JobProgress.FollowAsync(context, job, label, cancellationToken, cancelOnInterrupt: false).ConfigureAwait(false);
        if (job.Kind == "migrate") return await MigrationOutput.ReportJobAsync(context, job).ConfigureAwait(false);
        if (context.Json) context.WriteJson(job, JsonOutput.Context.JobView);
        if (job.State == JobStates.Succeeded)
        {
            if (!context.Json)
                context.Out.WriteLine($"job {job.Id} ({job.Kind} {job.Volume}) succeeded: {Sizes.Format(job.BytesTotal)} in {Sizes.Seconds(job.ElapsedSeconds)}");
            return ExitCodes.Success;
        }
        await context.Error.WriteLineAsync($"roam: job {job.Id} ({job.Kind} {job.Volume}) {job.State}" + (job.Error is null ? "" : $": {job.Error}")).ConfigureAwait(false);
        return ExitCodes.Failed;
    }
}
