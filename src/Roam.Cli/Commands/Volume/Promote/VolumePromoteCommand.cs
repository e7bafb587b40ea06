using System.CommandLine;
using Roam.Cli.Api;
using Roam.Cli.Output;
using Roam.Control;

namespace Roam.Cli.Commands.Volume.Promote;

internal sealed class VolumePromoteCommand : Command
{
    private readonly Argument<string> _nameArgument = VolumeArguments.Name("The replica volume to make writable here");
    private readonly Option<bool> _forceOption = new("--force")
    {
        Description = "Promote even while the primary is still attached (it is cut off; if it keeps writing, the two copies split)",
    };

    public VolumePromoteCommand(CliEnvironment environment) : base("promote", "Make a replica on this host the primary (writable), under a new data generation")
    {
        Arguments.Add(_nameArgument);
        Options.Add(_forceOption);
        SetAction(environment.Action(ExecuteAsync));
    }

    private async Task<int> ExecuteAsync(CliContext context, ParseResult parseResult, CancellationToken cancellationToken)
    {
        var name = parseResult.GetValue(_nameArgument)!;
        var volume = await context.Client.PostAsync($"v1/volumes/{ControlClient.Segment(name)}/promote", new PromoteRequest(parseResult.GetValue(_forceOption)),
            ControlJsonContext.Default.PromoteRequest, ControlJsonContext.Default.VolumeView, cancellationToken).ConfigureAwait(false);
        if (context.Json) context.WriteJson(volume, JsonOutput.Context.VolumeView);
        else context.Out.WriteLine($"volume {volume.Name} is now the primary here (generation {volume.Replication?.Generation}): {volume.NbdUris[0]}");
        return ExitCodes.Success;
    }
}
