using System.CommandLine;
using Roam.Cli.Api;
using Roam.Cli.Output;
using Roam.Control;

namespace Roam.Cli.Commands.Vm.Kill;

internal sealed class VmKillCommand : Command
{
    private readonly Argument<string> _name = VmArguments.Name();

    public VmKillCommand(CliEnvironment environment) : base("kill", "Kill a VM's QEMU at once (SIGKILL)")
    {
        Arguments.Add(_name);
        SetAction(environment.Action(ExecuteAsync));
    }

    private async Task<int> ExecuteAsync(CliContext context, ParseResult parse, CancellationToken ct)
    {
        var vm = await context.Client.PostAsync($"v1/vms/{ControlClient.Segment(parse.GetValue(_name)!)}/kill", ControlJsonContext.Default.VmView,
            TimeSpan.FromSeconds(120), ct).ConfigureAwait(false);
        return VmOutput.PrintState(context, vm);
    }
}
