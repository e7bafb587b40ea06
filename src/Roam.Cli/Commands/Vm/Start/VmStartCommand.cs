using System.CommandLine;
using Roam.Cli.Api;
using Roam.Cli.Output;
using Roam.Control;

namespace Roam.Cli.Commands.Vm.Start;

internal sealed class VmStartCommand : Command
{
    private readonly Argument<string> _name = VmArguments.Name();

    public VmStartCommand(CliEnvironment environment) : base("start", "Start a VM (QEMU with its volume attached through roamd's NBD socket)")
    {
        Arguments.Add(_name);
        SetAction(environment.Action(ExecuteAsync));
    }

    private async Task<int> ExecuteAsync(CliContext context, ParseResult parse, CancellationToken ct)
    {
        var vm = await context.Client.PostAsync($"v1/vms/{ControlClient.Segment(parse.GetValue(_name)!)}/start", ControlJsonContext.Default.VmView,
            TimeSpan.FromSeconds(120), ct).ConfigureAwait(false);
        return VmOutput.PrintState(context, vm);
    }
}
