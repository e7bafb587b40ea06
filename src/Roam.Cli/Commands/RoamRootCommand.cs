using System.CommandLine;
using System.CommandLine.Help;
using Roam.Cli.Commands.Export;
using Roam.Cli.Commands.Host;
using Roam.Cli.Commands.Job;
using Roam.Cli.Commands.Vm;
using Roam.Cli.Commands.Volume;

namespace Roam.Cli.Commands;

internal sealed class RoamRootCommand : RootCommand
{
    public RoamRootCommand(CliEnvironment environment)
        : base("roam: manage this host's volumes through roamd (virtual disks in sparse files, served over NBD).")
    {
        Options.Add(environment.Common.Control);
        Options.Add(environment.Common.Json);
        Subcommands.Add(new VolumeCommand(environment));
        Subcommands.Add(new ExportCommand(environment));
        Subcommands.Add(new JobCommand(environment));
        Subcommands.Add(new HostCommand(environment));
        Subcommands.Add(new VmCommand(environment));
        var help = Options.OfType<HelpOption>().Single();
        help.Action = new EpilogHelpAction((HelpAction)help.Action!);
    }
}
