using System.CommandLine;
using Roam.Cli.Commands.Host.Add;
using Roam.Cli.Commands.Host.Id;
using Roam.Cli.Commands.Host.List;
using Roam.Cli.Commands.Host.Remove;
using Roam.Cli.Commands.Host.Status;

namespace Roam.Cli.Commands.Host;

internal sealed class HostCommand : Command
{
    public HostCommand(CliEnvironment environment) : base("host", "This host's roamd, its identity, and the peer hosts it trusts for replication")
    {
        Subcommands.Add(new HostStatusCommand(environment));
        Subcommands.Add(new HostIdCommand(environment));
        Subcommands.Add(new HostAddCommand(environment));
        Subcommands.Add(new HostListCommand(environment));
        Subcommands.Add(new HostRemoveCommand(environment));
    }
}
