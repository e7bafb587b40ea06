using System.CommandLine;
using Roam.Control;

namespace Roam.Cli.Commands.Vm.List;

internal sealed class VmListCommand : Command
{
    public VmListCommand(CliEnvironment environment) : base("list", "List this host's VMs")
    {
        SetAction(environment.Action(ExecuteAsync));
    }

    private static async Task<int> ExecuteAsync(CliContext context, ParseResult parse, CancellationToken ct)
    {
        var vms = await context.Client.GetAsync("v1/vms", ControlJsonContext.Default.IReadOnlyListVmView, ct).ConfigureAwait(false);
        if (context.Json) context.WriteJson(vms, ControlJsonContext.Default.IReadOnlyListVmView);
        else foreach (var vm in vms) context.Out.WriteLine($"{vm.Name,-20} {vm.State,-10} {vm.Volume,-20} {vm.MemoryMiB} MiB {vm.Cpus} CPU(s)");
        return ExitCodes.Success;
    }
}
