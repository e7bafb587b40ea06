using System.CommandLine;
using Roam.Cli.Api;
using Roam.Cli.Output;
using Roam.Control;

namespace Roam.Cli.Commands.Vm.Show;

internal sealed class VmShowCommand : Command
{
    private readonly Argument<string> _name = VmArguments.Name();

    public VmShowCommand(CliEnvironment environment) : base("show", "Show a VM: state, QEMU pid, exit code and stderr of a crashed QEMU, migration")
    {
        Arguments.Add(_name);
        SetAction(environment.Action(ExecuteAsync));
    }

    private async Task<int> ExecuteAsync(CliContext context, ParseResult parse, CancellationToken ct) =>
        VmOutput.Print(context, await context.Client.GetAsync($"v1/vms/{ControlClient.Segment(parse.GetValue(_name)!)}",
            ControlJsonContext.Default.VmView, ct).ConfigureAwait(false));
}
