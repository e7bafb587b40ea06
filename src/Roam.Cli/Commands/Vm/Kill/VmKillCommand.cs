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
        if (context.Json) return VmOutput.Print(context, vm);
        context.Out.WriteLine($"VM {vm.Name} is {vm.State}" + (vm.Pid is { } pid ? $" (QEMU pid {pid}, {vm.Accelerator})" : ""));
        return ExitCodes.Success;
    }
}
