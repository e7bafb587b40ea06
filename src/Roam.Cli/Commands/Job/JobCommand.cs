using System.CommandLine;
using Roam.Cli.Commands.Job.Cancel;
using Roam.Cli.Commands.Job.List;
using Roam.Cli.Commands.Job.Show;
using Roam.Cli.Commands.Job.Watch;

namespace Roam.Cli.Commands.Job;

internal sealed class JobCommand : Command
{
    public JobCommand(CliEnvironment environment) : base("job", "Imports, exports and migrations running in roamd")
    {
        Subcommands.Add(new JobListCommand(environment));
        Subcommands.Add(new JobShowCommand(environment));
        Subcommands.Add(new JobWatchCommand(environment));
        Subcommands.Add(new JobCancelCommand(environment));
    }
}
