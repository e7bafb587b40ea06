using System.CommandLine;
using Roam.Cli.Api;
using Roam.Cli.Commands.Volume.Migrate;
using Roam.Cli.Output;
using Roam.Control;

namespace Roam.Cli.Commands.Volume.Replicate;

internal sealed class VolumeReplicateCommand : Command
{
    private readonly Argument<string> _nameArgument = VolumeArguments.Name("The volume to replicate (a primary on this host)");
    private readonly Option<string> _toOption = new("--to")
    {
        Description = "The trusted peer host that keeps the replica (see: roam host list)",
        HelpName = "HOST",
        Required = true,
    };
    private readonly Option<string> _modeOption = new("--mode")
    {
        Description = "sync: a write completes once the replica has it; async: writes are queued to the replica (default sync)",
        HelpName = "sync|async",
        DefaultValueFactory = _ => "sync",
    };

    private readonly Option<string?> _bandwidthOption = MigrationOptions.Bandwidth();

    public VolumeReplicateCommand(CliEnvironment environment) : base("replicate", "Replicate a volume to a trusted peer host and keep the replica in sync")
    {
        Arguments.Add(_nameArgument);
        Options.Add(_toOption);
        _modeOption.AcceptOnlyFromAmong("sync", "async");
        Options.Add(_modeOption);
        Options.Add(_bandwidthOption);
        SetAction(environment.Action(ExecuteAsync));
    }

    private async Task<int> ExecuteAsync(CliContext context, ParseResult parseResult, CancellationToken cancellationToken)
    {
        var name = parseResult.GetValue(_nameArgument)!;
        var peer = parseResult.GetValue(_toOption)!;
        var request = new AddReplicaRequest(peer, parseResult.GetValue(_modeOption), parseResult.GetValue(_bandwidthOption));
        var volume = await context.Client.PostAsync($"v1/volumes/{ControlClient.Segment(name)}/replicas", request,
            ControlJsonContext.Default.AddReplicaRequest, ControlJsonContext.Default.VolumeView, cancellationToken).ConfigureAwait(false);
        if (context.Json)
        {
            context.WriteJson(volume, JsonOutput.Context.VolumeView);
            return ExitCodes.Success;
        }
        var replica = volume.Replication?.Replicas.FirstOrDefault(r => string.Equals(r.Peer, peer, StringComparison.OrdinalIgnoreCase));
        context.Out.WriteLine(replica is null
            ? $"replicating volume {volume.Name} to {peer}"
            : $"replicating volume {volume.Name} to {replica.Peer} ({replica.Mode}): {replica.State}, {Sizes.Format(replica.BytesOutOfSync)} to copy (follow with: roam volume show {volume.Name})");
        return ExitCodes.Success;
    }
}
