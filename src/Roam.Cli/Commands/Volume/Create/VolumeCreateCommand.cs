using System.CommandLine;
using Roam.Cli.Output;
using Roam.Control;

namespace Roam.Cli.Commands.Volume.Create;

internal sealed class VolumeCreateCommand : Command
{
    private readonly Argument<string> _nameArgument = VolumeArguments.Name("Name of the new volume: 1-64 letters, digits, '.', '_' or '-'");
    private readonly Option<string> _sizeOption = VolumeArguments.Size("Size of the volume");

    public VolumeCreateCommand(CliEnvironment environment) : base("create", "Create an empty volume (a sparse file: it takes no space until written)")
    {
        Arguments.Add(_nameArgument);
        Options.Add(_sizeOption);
        SetAction(environment.Action(ExecuteAsync));
    }

    private async Task<int> ExecuteAsync(CliContext context, ParseResult parseResult, CancellationToken cancellationToken)
    {
        var request = new CreateVolumeRequest(parseResult.GetValue(_nameArgument), parseResult.GetValue(_sizeOption));
        var volume = await context.Client.PostAsync("v1/volumes", request, ControlJsonContext.Default.CreateVolumeRequest,
            ControlJsonContext.Default.VolumeView, cancellationToken).ConfigureAwait(false);
        if (context.Json) context.WriteJson(volume, JsonOutput.Context.VolumeView);
        else context.Out.WriteLine($"created volume {volume.Name} ({Sizes.Format(volume.Size)}): {volume.NbdUris[0]}");
        return ExitCodes.Success;
    }
}
