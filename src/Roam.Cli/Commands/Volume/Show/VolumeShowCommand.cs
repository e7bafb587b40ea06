using System.CommandLine;
using Roam.Cli.Api;
using Roam.Cli.Output;
using Roam.Control;

namespace Roam.Cli.Commands.Volume.Show;

internal sealed class VolumeShowCommand : Command
{
    private readonly Argument<string> _nameArgument = VolumeArguments.Name();

    public VolumeShowCommand(CliEnvironment environment) : base("show", "Show one volume: size, allocation, connections, NBD URIs and replication")
    {
        Arguments.Add(_nameArgument);
        SetAction(environment.Action(ExecuteAsync));
    }

    private async Task<int> ExecuteAsync(CliContext context, ParseResult parseResult, CancellationToken cancellationToken)
    {
        var name = parseResult.GetValue(_nameArgument)!;
        var volume = await context.Client.GetAsync($"v1/volumes/{ControlClient.Segment(name)}", ControlJsonContext.Default.VolumeView, cancellationToken).ConfigureAwait(false);
        if (context.Json) context.WriteJson(volume, JsonOutput.Context.VolumeView);
        else VolumeOutput.WriteDetails(context.Console, volume);
        return ExitCodes.Success;
    }
}
