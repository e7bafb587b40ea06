using System.CommandLine;
using Roam.Cli.Api;
using Roam.Cli.Output;
using Roam.Control;

namespace Roam.Cli.Commands.Job.Cancel;

internal sealed class JobCancelCommand : Command
{
    private readonly Argument<string> _idArgument = new("id") { Description = "The job's id (from roam job list)" };

    public JobCancelCommand(CliEnvironment environment) : base("cancel", "Cancel a running import or export; its partial output is removed")
    {
        Arguments.Add(_idArgument);
        SetAction(environment.Action(ExecuteAsync));
    }

    private async Task<int> ExecuteAsync(CliContext context, ParseResult parseResult, CancellationToken cancellationToken)
    {
        var id = parseResult.GetValue(_idArgument)!;
        var job = await context.Client.PostAsync($"v1/jobs/{ControlClient.Segment(id)}/cancel", ControlJsonContext.Default.JobView, cancellationToken).ConfigureAwait(false);
        if (context.Json) context.WriteJson(job, JsonOutput.Context.JobView);
        else if (JobStates.IsFinished(job.State)) context.Out.WriteLine($"job {job.Id} had already {job.State}");
        else context.Out.WriteLine($"cancelling job {job.Id} ({job.Kind} {job.Volume})");
        return ExitCodes.Success;
    }
}
