using System.CommandLine;
using Roam.Cli.Output;
using Roam.Control;

namespace Roam.Cli.Commands.Volume.List;

internal sealed class VolumeListCommand : Command
{
    public VolumeListCommand(CliEnvironment environment) : base("list", "List the volumes with their size, allocated space and open NBD connections")
    {
        Aliases.Add("ls");
        SetAction(environment.Action(ExecuteAsync));
    }

    private static async Task<int> ExecuteAsync(CliContext context, ParseResult parseResult, CancellationToken cancellationToken)
    {
        var volumes = await context.Client.GetAsync("v1/volumes", ControlJsonContext.Default.IReadOnlyListVolumeView, cancellationToken).ConfigureAwait(false);
        if (context.Json) context.WriteJson(volumes, JsonOutput.Context.IReadOnlyListVolumeView);
        else VolumeOutput.WriteTable(context.Console, volumes);
        return ExitCodes.Success;
    }
}
