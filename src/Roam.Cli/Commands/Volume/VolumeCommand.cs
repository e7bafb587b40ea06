using System.CommandLine;
using Roam.Cli.Commands.Volume.Create;
using Roam.Cli.Commands.Volume.Delete;
using Roam.Cli.Commands.Volume.Export;
using Roam.Cli.Commands.Volume.Import;
using Roam.Cli.Commands.Volume.List;
using Roam.Cli.Commands.Volume.Migrate;
using Roam.Cli.Commands.Volume.Migration;
using Roam.Cli.Commands.Volume.Promote;
using Roam.Cli.Commands.Volume.Replicate;
using Roam.Cli.Commands.Volume.Resize;
using Roam.Cli.Commands.Volume.Resolve;
using Roam.Cli.Commands.Volume.Show;
using Roam.Cli.Commands.Volume.Unreplicate;

namespace Roam.Cli.Commands.Volume;

internal sealed class VolumeCommand : Command
{
    public VolumeCommand(CliEnvironment environment) : base("volume", "Create, inspect, grow, delete, import, export, replicate and migrate volumes")
    {
        Subcommands.Add(new VolumeCreateCommand(environment));
        Subcommands.Add(new VolumeListCommand(environment));
        Subcommands.Add(new VolumeShowCommand(environment));
        Subcommands.Add(new VolumeResizeCommand(environment));
        Subcommands.Add(new VolumeDeleteCommand(environment));
        Subcommands.Add(new VolumeImportCommand(environment));
        Subcommands.Add(new VolumeExportCommand(environment));
        Subcommands.Add(new VolumeReplicateCommand(environment));
        Subcommands.Add(new VolumeUnreplicateCommand(environment));
        Subcommands.Add(new VolumePromoteCommand(environment));
        Subcommands.Add(new VolumeResolveCommand(environment));
        Subcommands.Add(new VolumeMigrateCommand(environment));
        Subcommands.Add(new VolumeMigrationCommand(environment));
    }
}
