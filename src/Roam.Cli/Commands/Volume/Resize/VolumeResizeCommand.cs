using System.CommandLine;
using Roam.Cli.Api;
using Roam.Cli.Output;
using Roam.Control;

namespace Roam.Cli.Commands.Volume.Resize;

internal sealed class VolumeResizeCommand : Command
{
    private readonly Argument<string> _nameArgument = VolumeArguments.Name();
    private readonly Option<string> _sizeOption = VolumeArguments.Size("New size; volumes only grow, shrinking is refused");

    public VolumeResizeCommand(CliEnvironment environment) : base("resize", "Grow a volume (clients see the new size when they reconnect)")
    {
        Arguments.Add(_nameArgument);
        Options.Add(_sizeOption);
        SetAction(environment.Action(ExecuteAsync));
    }

    private async Task<int> ExecuteAsync(CliContext context, ParseResult parseResult, CancellationToken cancellationToken)
    {
        var name = parseResult.GetValue(_nameArgument)!;
        var volume = await context.Client.PostAsync($"v1/volumes/{ControlClient.Segment(name)}/resize",
            new ResizeVolumeRequest(parseResult.GetValue(_sizeOption)), ControlJsonContext.Default.ResizeVolumeRequest,
            ControlJsonContext.Default.VolumeView, cancellationToken).ConfigureAwait(false);
        if (context.Json) context.WriteJson(volume, JsonOutput.Context.VolumeView);
        else context.Out.WriteLine($"volume {volume.Name} is now {Sizes.Format(volume.Size)}");
        return ExitCodes.Success;
    }
}
