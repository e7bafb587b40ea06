using System.CommandLine;
using Roam.Cli.Api;
using Roam.Cli.Output;
using Roam.Control;

namespace Roam.Cli.Commands.Export;

/// <summary>`roam export NAME`: the NBD URIs a client (qemu, nbdinfo, nbdcopy) connects to, one per line.</summary>
internal sealed class ExportCommand : Command
{
    private readonly Argument<string> _nameArgument = new("name") { Description = "The volume to connect to" };

    public ExportCommand(CliEnvironment environment) : base("export", "Print the NBD URIs of a volume (Unix socket, and TCP when roamd listens on TCP)")
    {
        Arguments.Add(_nameArgument);
        SetAction(environment.Action(ExecuteAsync));
    }

    private async Task<int> ExecuteAsync(CliContext context, ParseResult parseResult, CancellationToken cancellationToken)
    {
        var name = parseResult.GetValue(_nameArgument)!;
        var volume = await context.Client.GetAsync($"v1/volumes/{ControlClient.Segment(name)}", ControlJsonContext.Default.VolumeView, cancellationToken).ConfigureAwait(false);
        if (context.Json) context.WriteJson(new ExportUris(volume.Name, volume.NbdUris), JsonOutput.Context.ExportUris);
        else foreach (var uri in volume.NbdUris) context.Out.WriteLine(uri);
        return ExitCodes.Success;
    }
}
