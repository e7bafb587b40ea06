using System.CommandLine;
using Roam.Cli.Api;
using Roam.Cli.Output;
using Roam.Control;

namespace Roam.Cli.Commands.Volume.Import;

internal sealed class VolumeImportCommand : Command
{
    private readonly Argument<string> _nameArgument = VolumeArguments.Name("Name of the new volume the image becomes");
    private readonly Argument<string> _fileArgument = new("file") { Description = "Image file to import (raw or qcow2)" };
    private readonly Option<string?> _formatOption = VolumeArguments.Format("Image format (default: qcow2 if the file starts with the qcow2 magic, else raw)");

    public VolumeImportCommand(CliEnvironment environment) : base("import", "Create a volume from an image file; holes and zero blocks stay unallocated")
    {
        Arguments.Add(_nameArgument);
        Arguments.Add(_fileArgument);
        Options.Add(_formatOption);
        SetAction(environment.Action(ExecuteAsync));
    }

    private async Task<int> ExecuteAsync(CliContext context, ParseResult parseResult, CancellationToken cancellationToken)
    {
        var name = parseResult.GetValue(_nameArgument)!;
        // roamd resolves nothing against the caller's working directory, so the path goes absolute.
        var file = Path.GetFullPath(parseResult.GetValue(_fileArgument)!);
        var job = await context.Client.PostAsync($"v1/volumes/{ControlClient.Segment(name)}/import",
            new ImportRequest(file, parseResult.GetValue(_formatOption)), ControlJsonContext.Default.ImportRequest,
            ControlJsonContext.Default.JobView, cancellationToken).ConfigureAwait(false);
        job = await JobProgress.FollowAsync(context, job, $"import {name}", cancellationToken).ConfigureAwait(false);
        if (context.Json) context.WriteJson(job, JsonOutput.Context.JobView);
        switch (job.State)
        {
            case JobStates.Succeeded:
                if (!context.Json)
                {
                    context.Out.WriteLine($"imported {Sizes.Format(job.BytesTotal)} ({Sizes.Format(job.AllocatedBytes ?? 0)} allocated) into {name} " +
                        $"in {Sizes.Seconds(job.ElapsedSeconds)}, {Sizes.Rate(job.BytesPerSecond)}");
                }
                return ExitCodes.Success;
            case JobStates.Cancelled:
                await context.Error.WriteLineAsync($"roam: import cancelled; the unfinished volume {name} was removed").ConfigureAwait(false);
                return ExitCodes.Failed;
            default:
                await context.Error.WriteLineAsync($"roam: import of {file} failed: {job.Error}").ConfigureAwait(false);
                return ExitCodes.Failed;
        }
    }
}
