using System.CommandLine;
using Roam.Cli.Api;
using Roam.Cli.Output;
using Roam.Control;
using Spectre.Console;

namespace Roam.Cli.Commands.Job.Show;

internal sealed class JobShowCommand : Command
{
    private readonly Argument<string> _idArgument = new("id") { Description = "The job's id (from roam job list)" };

    public JobShowCommand(CliEnvironment environment) : base("show", "Show one job's progress or outcome")
    {
        Arguments.Add(_idArgument);
        SetAction(environment.Action(ExecuteAsync));
    }

    private async Task<int> ExecuteAsync(CliContext context, ParseResult parseResult, CancellationToken cancellationToken)
    {
        var job = await context.Client.GetAsync($"v1/jobs/{ControlClient.Segment(parseResult.GetValue(_idArgument)!)}",
            ControlJsonContext.Default.JobView, cancellationToken).ConfigureAwait(false);
        if (context.Json)
        {
            context.WriteJson(job, JsonOutput.Context.JobView);
            return ExitCodes.Success;
        }
        var grid = new Grid().AddColumn(new GridColumn().NoWrap().PadRight(2)).AddColumn();
        grid.AddRow("Job", $"{job.Id}: {job.Kind} {Markup.Escape(job.Volume)} ({job.Format})");
        if (job.Kind == "migrate")
        {
            grid.AddRow("Peer", Markup.Escape(job.Peer ?? job.Path));
            if (job.Phase is { } phase) grid.AddRow("Phase", Markup.Escape(phase) + $", {Sizes.Format(job.BytesLeft ?? 0)} left, {Sizes.Format(job.BytesOnWire ?? 0)} on the wire");
            if (job.WritePauseMs is { } pause) grid.AddRow("Hand-over", $"writes paused {MigrationOutput.Milliseconds(pause)}; {Markup.Escape(job.NewPrimary ?? "?")} is primary");
        }
        else grid.AddRow("File", Markup.Escape(job.Path));
        grid.AddRow("State", Markup.Escape(job.State) + (job.Error is null ? "" : $": {Markup.Escape(job.Error)}"));
        grid.AddRow("Progress", $"{Sizes.Format(job.BytesDone)} of {Sizes.Format(job.BytesTotal)} in {Sizes.Seconds(job.ElapsedSeconds)}, {Sizes.Rate(job.BytesPerSecond)}");
        context.Console.Write(grid);
        return ExitCodes.Success;
    }
}
