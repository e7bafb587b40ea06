using System.CommandLine;
using Roam.Cli.Output;
using Roam.Control;
using Spectre.Console;

namespace Roam.Cli.Commands.Host.Id;

internal sealed class HostIdCommand : Command
{
    public HostIdCommand(CliEnvironment environment) : base("id", "Show this host's name and certificate fingerprint, which peers trust it by")
    {
        SetAction(environment.Action(ExecuteAsync));
    }

    private static async Task<int> ExecuteAsync(CliContext context, ParseResult parseResult, CancellationToken cancellationToken)
    {
        var host = await context.Client.GetAsync("v1/host", ControlJsonContext.Default.HostInfo, cancellationToken).ConfigureAwait(false);
        var id = new HostIdentityView(host.HostName, host.Fingerprint, host.PeerListen, host.VmNetwork, host.VmSubnet, host.VmBridge);
        if (context.Json)
        {
            context.WriteJson(id, JsonOutput.Context.HostIdentityView);
            return ExitCodes.Success;
        }
        var grid = new Grid().AddColumn(new GridColumn().NoWrap().PadRight(2)).AddColumn();
        grid.AddRow("Host name", Markup.Escape(id.HostName));
        grid.AddRow("Fingerprint", Markup.Escape(id.Fingerprint));
        grid.AddRow("Peer listen", Markup.Escape(id.PeerListen ?? "off (start roamd with --peer-listen to hold replicas)"));
        if (host.VmSubnet is { } subnet)
            grid.AddRow("VM network", Markup.Escape($"{subnet} on bridge {host.VmBridge} ({(host.VmBridgeUp ? "up" : "set up when a VM needs it")}); new VMs get: {host.VmNetwork}"));
        context.Console.Write(grid);
        context.Out.WriteLine();
        context.Out.WriteLine($"To trust this host on a peer: roam host add {id.HostName} {id.PeerListen ?? "ADDR:PORT"} --fingerprint {id.Fingerprint}");
        return ExitCodes.Success;
    }
}
