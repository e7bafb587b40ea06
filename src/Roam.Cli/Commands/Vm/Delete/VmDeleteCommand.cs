using System.CommandLine;
using Roam.Cli.Api;

namespace Roam.Cli.Commands.Vm.Delete;

internal sealed class VmDeleteCommand : Command
{
    private readonly Argument<string> _name = VmArguments.Name();

    public VmDeleteCommand(CliEnvironment environment) : base("delete", "Delete a stopped VM's definition (its volume stays)")
    {
        Arguments.Add(_name);
        SetAction(environment.Action(ExecuteAsync));
    }

    private async Task<int> ExecuteAsync(CliContext context, ParseResult parse, CancellationToken ct)
    {
        await context.Client.DeleteAsync($"v1/vms/{ControlClient.Segment(parse.GetValue(_name)!)}", ct).ConfigureAwait(false);
        if (!context.Json) context.Out.WriteLine($"deleted VM {parse.GetValue(_name)}");
        return ExitCodes.Success;
    }
}
