using System.CommandLine;
using Roam.Cli.Api;
using Roam.Cli.Output;
using Roam.Control;

namespace Roam.Cli.Commands.Vm.Migrate;

internal sealed class VmMigrateCommand : Command
{
    private readonly Argument<string> _name = VmArguments.Name();
    private readonly Option<string> _to = new("--to") { Description = "The trusted peer host to move the VM to (see: roam host list)", HelpName = "HOST", Required = true };
    private readonly Option<string?> _bandwidth = new("--bandwidth")
    {
        Description = "Bandwidth limit for the migration, in bytes per second (like 100M; binary units): the disk copy and QEMU's memory stream. "
            + "Absent: no limit on the disk copy, QEMU's default (128M) on the memory stream",
        HelpName = "RATE",
    };
    private readonly Option<long?> _downtime = new("--downtime-limit") { Description = "Largest acceptable pause at switch-over, in ms (default: 200, raised step by step while the memory does not converge)", HelpName = "MS" };

    public VmMigrateCommand(CliEnvironment environment)
        : base("migrate", "Live-migrate a running VM to a trusted peer: its disk (mirrored), then its memory through roamd's authenticated peer channel")
    {
        Arguments.Add(_name);
        Options.Add(_to);
        Options.Add(_bandwidth);
        Options.Add(_downtime);
        SetAction(environment.Action(ExecuteAsync));
    }

    private async Task<int> ExecuteAsync(CliContext context, ParseResult parse, CancellationToken ct)
    {
        var name = parse.GetValue(_name)!;
        var peer = parse.GetValue(_to)!;
        var job = await context.Client.PostAsync($"v1/vms/{ControlClient.Segment(name)}/migrate",
            new MigrateVmRequest(peer, parse.GetValue(_bandwidth), parse.GetValue(_downtime)), ControlJsonContext.Default.MigrateVmRequest,
            ControlJsonContext.Default.JobView, ct).ConfigureAwait(false);
        job = await JobProgress.FollowAsync(context, job, $"migrate VM {name} to {peer}", ct).ConfigureAwait(false);
        VmMigrationView? migration = null;
        try
        {
            migration = await context.Client.GetAsync($"v1/vms/{ControlClient.Segment(name)}/migration", ControlJsonContext.Default.VmMigrationView,
                CancellationToken.None).ConfigureAwait(false);
        }
        catch (ControlApiException) { }
        if (context.Json) context.WriteJson(job, ControlJsonContext.Default.JobView);
        if (job.State != JobStates.Succeeded)
        {
            await context.Error.WriteLineAsync($"roam: migrating VM {name} to {peer} {job.State}: {job.Error}").ConfigureAwait(false);
            return ExitCodes.Failed;
        }
        if (!context.Json) context.Out.WriteLine($"migrated VM {name} to {peer}" + (migration is null ? "" : ": " + VmOutput.Describe(migration)));
        return ExitCodes.Success;
    }
}
