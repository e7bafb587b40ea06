using System.CommandLine;
using Roam.Cli.Commands.Host.Status;

namespace Roam.Cli.Commands.Host;

internal sealed class HostCommand : Command
{
    public HostCommand(CliEnvironment environment) : base("host", "This host's roamd")
    {
        Subcommands.Add(new HostStatusCommand(environment));
    }
}
