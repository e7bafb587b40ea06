using System.CommandLine;
using Roam.Cli.Api;
using Roam.Cli.Output;
using Roam.Control;

namespace Roam.Cli.Commands.Volume.Resolve;

internal sealed class VolumeResolveCommand : Command
{
    private readonly Argument<string> _nameArgument = VolumeArguments.Name("The volume whose copies split (both hosts wrote apart)");
    private readonly Option<string> _keepOption = new("--keep")
    {
        Description = "The host whose data wins: this host's name or the peer's; the other copy is overwritten by it",
        HelpName = "HOST",
        Required = true,
    };

    public VolumeResolveCommand(CliEnvironment environment)
        : base("resolve", "End a split brain: keep one host's data and overwrite the other copy with it (run it on both hosts)")
    {
        Arguments.Add(_nameArgument);
        Options.Add(_keepOption);
        SetAction(environment.Action(ExecuteAsync));
    }

    private async Task<int> ExecuteAsync(CliContext context, ParseResult parseResult, CancellationToken cancellationToken)
    {
        var name = parseResult.GetValue(_nameArgument)!;
        var keep = parseResult.GetValue(_keepOption)!;
        var volume = await context.Client.PostAsync($"v1/volumes/{ControlClient.Segment(name)}/resolve", new ResolveRequest(keep),
            ControlJsonContext.Default.ResolveRequest, ControlJsonContext.Default.VolumeView, cancellationToken).ConfigureAwait(false);
        if (context.Json)
        {
            context.WriteJson(volume, JsonOutput.Context.VolumeView);
            return ExitCodes.Success;
        }
        if (volume.Replication is { Role: VolumeRoles.Replica } r)
            context.Out.WriteLine($"volume {volume.Name} is now a read-only replica of {r.PrimaryPeer}: this host's copy will be overwritten by {r.PrimaryPeer}'s data "
                + $"(run `roam volume resolve {volume.Name} --keep {r.PrimaryPeer}` on {r.PrimaryPeer} too if not done yet)");
        else
            context.Out.WriteLine($"volume {volume.Name} keeps this host's data: the other copy will be overwritten with it once that host resolved too "
                + $"(follow with: roam volume show {volume.Name})");
        return ExitCodes.Success;
    }
}
