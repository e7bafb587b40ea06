using System.CommandLine;
using Roam.Cli.Commands.Vm.Console;
using Roam.Cli.Commands.Vm.Create;
using Roam.Cli.Commands.Vm.Delete;
using Roam.Cli.Commands.Vm.Kill;
using Roam.Cli.Commands.Vm.List;
using Roam.Cli.Commands.Vm.Migrate;
using Roam.Cli.Commands.Vm.Show;
using Roam.Cli.Commands.Vm.Start;
using Roam.Cli.Commands.Vm.Stop;

namespace Roam.Cli.Commands.Vm;

/// <summary>`roam vm ...`: VMs run by roamd on its volumes, and their live migration.</summary>
internal sealed class VmCommand : Command
{
    public VmCommand(CliEnvironment environment) : base("vm", "Create, start, stop, inspect and live-migrate VMs (QEMU run by roamd on a volume)")
    {
        Subcommands.Add(new VmCreateCommand(environment));
        Subcommands.Add(new VmListCommand(environment));
        Subcommands.Add(new VmShowCommand(environment));
        Subcommands.Add(new VmStartCommand(environment));
        Subcommands.Add(new VmStopCommand(environment));
        Subcommands.Add(new VmKillCommand(environment));
        Subcommands.Add(new VmDeleteCommand(environment));
        Subcommands.Add(new VmConsoleCommand(environment));
        Subcommands.Add(new VmMigrateCommand(environment));
    }
}
