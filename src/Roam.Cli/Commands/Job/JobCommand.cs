using System.CommandLine;
using Roam.Cli.Commands.Job.Cancel;
using Roam.Cli.Commands.Job.List;
using Roam.Cli.Commands.Job.Show;

namespace Roam.Cli.Commands.Job;

internal sealed class JobCommand : Command
{
    public JobCommand(CliEnvironment environment) : base("job", "Imports and exports running in roamd")
    {
        Subcommands.Add(new JobListCommand(environment));
        Subcommands.Add(new JobShowCommand(environment));
        Subcommands.Add(new JobCancelCommand(environment));
    }
}
