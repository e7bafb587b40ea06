using System.CommandLine;
using Roam.Cli.Api;
using Roam.Cli.Output;
using Roam.Control;

namespace Roam.Cli.Commands.Vm.Stop;

internal sealed class VmStopCommand : Command
{
    private readonly Argument<string> _name = VmArguments.Name();
    private readonly Option<double?> _timeout = new("--timeout") { Description = "Seconds to wait for the guest to power off before killing it (default 10)", HelpName = "S" };

    public VmStopCommand(CliEnvironment environment) : base("stop", "Stop a VM: ACPI power-down, then kill it after a timeout")
    {
        Arguments.Add(_name);
        Options.Add(_timeout);
        SetAction(environment.Action(ExecuteAsync));
    }

    private async Task<int> ExecuteAsync(CliContext context, ParseResult parse, CancellationToken ct)
    {
        var vm = await context.Client.PostAsync($"v1/vms/{ControlClient.Segment(parse.GetValue(_name)!)}/stop", new StopVmRequest(parse.GetValue(_timeout)),
            ControlJsonContext.Default.StopVmRequest, ControlJsonContext.Default.VmView, ct).ConfigureAwait(false);
        return VmOutput.PrintState(context, vm);
    }
}
