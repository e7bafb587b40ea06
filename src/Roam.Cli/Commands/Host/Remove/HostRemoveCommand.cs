using System.CommandLine;
using Roam.Cli.Api;
using Roam.Cli.Output;

namespace Roam.Cli.Commands.Host.Remove;

internal sealed class HostRemoveCommand : Command
{
    private readonly Argument<string> _nameArgument = new("name") { Description = "The trusted peer's name (see: roam host list)" };

    public HostRemoveCommand(CliEnvironment environment) : base("remove", "Stop trusting a peer host (connections already open are not closed)")
    {
        Aliases.Add("rm");
        Arguments.Add(_nameArgument);
        SetAction(environment.Action(ExecuteAsync));
    }

    private async Task<int> ExecuteAsync(CliContext context, ParseResult parseResult, CancellationToken cancellationToken)
    {
        var name = parseResult.GetValue(_nameArgument)!;
        await context.Client.DeleteAsync($"v1/peers/{ControlClient.Segment(name)}", cancellationToken).ConfigureAwait(false);
        if (context.Json) context.WriteJson(new RemovePeerResult(name, Removed: true), JsonOutput.Context.RemovePeerResult);
        else context.Out.WriteLine($"no longer trusting peer {name}");
        return ExitCodes.Success;
    }
}
