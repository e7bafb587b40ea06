using System.CommandLine;
using Roam.Cli.Api;
using Roam.Cli.Output;
using Roam.Control;

namespace Roam.Cli.Commands.Volume.Unreplicate;

internal sealed class VolumeUnreplicateCommand : Command
{
    private readonly Argument<string> _nameArgument = VolumeArguments.Name("The volume to stop replicating (a primary on this host)");
    private readonly Option<string> _fromOption = new("--from")
    {
        Description = "The peer host whose replica to drop (see: roam volume show NAME)",
        HelpName = "HOST",
        Required = true,
    };

    public VolumeUnreplicateCommand(CliEnvironment environment) : base("unreplicate",
        "Stop replicating a volume to a peer host; the peer is told, and its copy becomes a writable volume of its own there "
        + "(if the peer is unreachable, its copy stays a read-only replica until `roam volume promote NAME` is run there)")
    {
        Arguments.Add(_nameArgument);
        Options.Add(_fromOption);
        SetAction(environment.Action(ExecuteAsync));
    }

    private async Task<int> ExecuteAsync(CliContext context, ParseResult parseResult, CancellationToken cancellationToken)
    {
        var name = parseResult.GetValue(_nameArgument)!;
        var peer = parseResult.GetValue(_fromOption)!;
        var removal = await context.Client.DeleteAsync($"v1/volumes/{ControlClient.Segment(name)}/replicas/{ControlClient.Segment(peer)}",
            ControlJsonContext.Default.RemoveReplicaView, cancellationToken).ConfigureAwait(false);
        if (context.Json)
        {
            context.WriteJson(removal, JsonOutput.Context.RemoveReplicaView);
            return ExitCodes.Success;
        }
        context.Out.WriteLine($"volume {removal.Volume.Name} is no longer replicated to {removal.Peer}");
        if (removal.PeerDetached)
            context.Out.WriteLine($"{removal.Peer} dropped its replica role: its copy of {removal.Volume.Name} is a writable volume of its own there");
        else
            await context.Error.WriteLineAsync(
                $"roam: warning: {removal.Peer} could not be told ({removal.PeerError}): its copy of {removal.Volume.Name} stays a read-only replica there; "
                + $"to write to it or delete it, run on {removal.Peer}: roam volume promote {removal.Volume.Name}").ConfigureAwait(false);
        return ExitCodes.Success;
    }
}
