using System.CommandLine;
using Roam.Cli.Api;
using Roam.Cli.Output;
using Roam.Control;

namespace Roam.Cli.Commands.Volume.Migrate;

internal sealed class VolumeMigrateCommand : Command
{
    private readonly Argument<string> _nameArgument = VolumeArguments.Name("The volume to migrate (a primary on this host)");
    private readonly Option<string> _toOption = MigrationOptions.To();
    private readonly Option<bool> _noKeepReplicaOption = MigrationOptions.NoKeepReplica();
    private readonly Option<string?> _bandwidthOption = MigrationOptions.Bandwidth();

    public VolumeMigrateCommand(CliEnvironment environment)
        : base("migrate", "Move a volume's primary role to a trusted peer live: copy it there, then hand over with writes paused for milliseconds")
    {
        Arguments.Add(_nameArgument);
        Options.Add(_toOption);
        Options.Add(_noKeepReplicaOption);
        Options.Add(_bandwidthOption);
        SetAction(environment.Action(ExecuteAsync));
    }

    private async Task<int> ExecuteAsync(CliContext context, ParseResult parseResult, CancellationToken cancellationToken)
    {
        var name = parseResult.GetValue(_nameArgument)!;
        var peer = parseResult.GetValue(_toOption)!;
        var job = await context.Client.PostAsync($"v1/volumes/{ControlClient.Segment(name)}/migrate",
            new MigrateRequest(peer, !parseResult.GetValue(_noKeepReplicaOption), parseResult.GetValue(_bandwidthOption)), ControlJsonContext.Default.MigrateRequest,
            ControlJsonContext.Default.JobView, cancellationToken).ConfigureAwait(false);
        job = await JobProgress.FollowAsync(context, job, $"migrate {name} to {peer}", cancellationToken).ConfigureAwait(false);
        return await MigrationOutput.ReportJobAsync(context, job).ConfigureAwait(false);
    }
}

/// <summary>Options the migration verbs share.</summary>
internal static class MigrationOptions
{
    public static Option<string> To() => new("--to")
    {
        Description = "The trusted peer host that becomes the volume's primary (see: roam host list)",
        HelpName = "HOST",
        Required = true,
    };

    public static Option<string?> Bandwidth() => new("--bandwidth")
    {
        Description = "Limit the link to this many bytes per second on the wire, like 20M (0: no limit); the copy yields to mirrored writes. Kept for the replica afterwards",
        HelpName = "RATE",
    };

    public static Option<bool> NoKeepReplica() => new("--no-keep-replica")
    {
        Description = "Remove this host's copy after the hand-over (default: keep it as a warm replica of the new primary)",
    };
}
