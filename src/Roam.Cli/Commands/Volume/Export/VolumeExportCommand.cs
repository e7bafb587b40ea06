using System.CommandLine;
using Roam.Cli.Api;
using Roam.Cli.Output;
using Roam.Control;

namespace Roam.Cli.Commands.Volume.Export;

internal sealed class VolumeExportCommand : Command
{
    private readonly Argument<string> _nameArgument = VolumeArguments.Name("The volume to export");
    private readonly Argument<string> _fileArgument = new("file") { Description = "Image file to write" };
    private readonly Option<string?> _formatOption = VolumeArguments.Format("Image format (default: qcow2 for a .qcow2 file name, else raw; raw output is sparse)");
    private readonly Option<bool> _forceOption = new("--force") { Description = "Overwrite the file if it exists (only once the new image is complete)" };

    public VolumeExportCommand(CliEnvironment environment) : base("export", "Write a volume to an image file (raw or qcow2)")
    {
        Arguments.Add(_nameArgument);
        Arguments.Add(_fileArgument);
        Options.Add(_formatOption);
        Options.Add(_forceOption);
        SetAction(environment.Action(ExecuteAsync));
    }

    private async Task<int> ExecuteAsync(CliContext context, ParseResult parseResult, CancellationToken cancellationToken)
    {
        var name = parseResult.GetValue(_nameArgument)!;
        var file = Path.GetFullPath(parseResult.GetValue(_fileArgument)!);
        var job = await context.Client.PostAsync($"v1/volumes/{ControlClient.Segment(name)}/export",
            new ExportRequest(file, parseResult.GetValue(_formatOption), parseResult.GetValue(_forceOption)),
            ControlJsonContext.Default.ExportRequest, ControlJsonContext.Default.JobView, cancellationToken).ConfigureAwait(false);
        job = await JobProgress.FollowAsync(context, job, $"export {name}", cancellationToken).ConfigureAwait(false);
        if (context.Json) context.WriteJson(job, JsonOutput.Context.JobView);
        switch (job.State)
        {
            case JobStates.Succeeded:
                if (!context.Json)
                {
                    context.Out.WriteLine($"exported {name} ({Sizes.Format(job.BytesTotal)}) to {file} as {job.Format} ({Sizes.Format(job.AllocatedBytes ?? 0)} allocated) " +
                        $"in {Sizes.Seconds(job.ElapsedSeconds)}, {Sizes.Rate(job.BytesPerSecond)}");
                }
                return ExitCodes.Success;
            case JobStates.Cancelled:
                await context.Error.WriteLineAsync($"roam: export cancelled; {file} was not written").ConfigureAwait(false);
                return ExitCodes.Failed;
            default:
                await context.Error.WriteLineAsync($"roam: export of {name} failed: {job.Error}").ConfigureAwait(false);
                return ExitCodes.Failed;
        }
    }
}
