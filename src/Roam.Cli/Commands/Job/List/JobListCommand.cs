using System.CommandLine;
using Roam.Cli.Output;
using Roam.Control;
using Spectre.Console;

namespace Roam.Cli.Commands.Job.List;

internal sealed class JobListCommand : Command
{
    public JobListCommand(CliEnvironment environment) : base("list", "List recent and running jobs")
    {
        Aliases.Add("ls");
        SetAction(environment.Action(ExecuteAsync));
    }

    private static async Task<int> ExecuteAsync(CliContext context, ParseResult parseResult, CancellationToken cancellationToken)
    {
        var jobs = await context.Client.GetAsync("v1/jobs", ControlJsonContext.Default.IReadOnlyListJobView, cancellationToken).ConfigureAwait(false);
        if (context.Json)
        {
            context.WriteJson(jobs, JsonOutput.Context.IReadOnlyListJobView);
            return ExitCodes.Success;
        }
        if (jobs.Count == 0)
        {
            context.Out.WriteLine("no jobs");
            return ExitCodes.Success;
        }
        var table = new Table().Border(TableBorder.Simple).AddColumns("ID", "KIND", "VOLUME", "STATE", "DONE", "FILE");
        foreach (var j in jobs)
        {
            table.AddRow(j.Id, j.Kind, Markup.Escape(j.Volume), Markup.Escape(j.State),
                $"{Sizes.Format(j.BytesDone)} / {Sizes.Format(j.BytesTotal)}", Markup.Escape(j.Path));
        }
        context.Console.Write(table);
        return ExitCodes.Success;
    }
}
