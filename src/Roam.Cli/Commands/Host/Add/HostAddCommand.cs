using System.CommandLine;
using Roam.Cli.Output;
using Roam.Control;

namespace Roam.Cli.Commands.Host.Add;

internal sealed class HostAddCommand : Command
{
    private readonly Argument<string> _nameArgument = new("name") { Description = "A local name for the peer: 1-64 letters, digits, '.', '-' or '_'" };
    private readonly Argument<string> _addressArgument = new("address") { Description = "Where the peer's roamd listens for peers (its --peer-listen): HOST:PORT or [IPv6]:PORT" };
    private readonly Option<string> _fingerprintOption = new("--fingerprint")
    {
        Description = "The peer's certificate fingerprint, as `roam host id` prints it on the peer (SHA256:...)",
        HelpName = "FP",
        Required = true,
    };

    public HostAddCommand(CliEnvironment environment) : base("add", "Trust a peer host for replication, pinned to its certificate fingerprint")
    {
        Arguments.Add(_nameArgument);
        Arguments.Add(_addressArgument);
        Options.Add(_fingerprintOption);
        SetAction(environment.Action(ExecuteAsync));
    }

    private async Task<int> ExecuteAsync(CliContext context, ParseResult parseResult, CancellationToken cancellationToken)
    {
        var request = new AddPeerRequest(parseResult.GetValue(_nameArgument), parseResult.GetValue(_addressArgument), parseResult.GetValue(_fingerprintOption));
        var peer = await context.Client.PostAsync("v1/peers", request, ControlJsonContext.Default.AddPeerRequest,
            ControlJsonContext.Default.PeerView, cancellationToken).ConfigureAwait(false);
        if (context.Json) context.WriteJson(peer, JsonOutput.Context.PeerView);
        else context.Out.WriteLine($"trusting peer {peer.Name} at {peer.Address} ({peer.Fingerprint})");
        return ExitCodes.Success;
    }
}
