using System.CommandLine;
using Roam.Cli.Api;
using Roam.Cli.Output;

namespace Roam.Cli.Commands.Volume.Delete;

internal sealed class VolumeDeleteCommand : Command
{
    private readonly Argument<string> _nameArgument = VolumeArguments.Name();

    public VolumeDeleteCommand(CliEnvironment environment) : base("delete", "Delete a volume and its data (refused while an NBD client has it open)")
    {
        Aliases.Add("rm");
        Arguments.Add(_nameArgument);
        SetAction(environment.Action(ExecuteAsync));
    }

    private async Task<int> ExecuteAsync(CliContext context, ParseResult parseResult, CancellationToken cancellationToken)
    {
        var name = parseResult.GetValue(_nameArgument)!;
        await context.Client.DeleteAsync($"v1/volumes/{ControlClient.Segment(name)}", cancellationToken).ConfigureAwait(false);
        if (context.Json) context.WriteJson(new DeleteResult(name, Deleted: true), JsonOutput.Context.DeleteResult);
        else context.Out.WriteLine($"deleted volume {name}");
        return ExitCodes.Success;
    }
}
