using System.CommandLine;
using System.Globalization;
using Roam.Cli.Output;
using Roam.Control;
using Spectre.Console;

namespace Roam.Cli.Commands.Host.Status;

internal sealed class HostStatusCommand : Command
{
    public HostStatusCommand(CliEnvironment environment) : base("status", "Show roamd's version, pid, identity, data dir and NBD and peer endpoints")
    {
        SetAction(environment.Action(ExecuteAsync));
    }

    private static async Task<int> ExecuteAsync(CliContext context, ParseResult parseResult, CancellationToken cancellationToken)
    {
        var host = await context.Client.GetAsync("v1/host", ControlJsonContext.Default.HostInfo, cancellationToken).ConfigureAwait(false);
        if (context.Json)
        {
            context.WriteJson(host, JsonOutput.Context.HostInfo);
            return ExitCodes.Success;
        }
        var grid = new Grid().AddColumn(new GridColumn().NoWrap().PadRight(2)).AddColumn();
        grid.AddRow("roamd", $"{Markup.Escape(host.Version)} (pid {host.Pid.ToString(CultureInfo.InvariantCulture)})");
        grid.AddRow("Host name", Markup.Escape(host.HostName));
        grid.AddRow("Fingerprint", Markup.Escape(host.Fingerprint));
        grid.AddRow("Data dir", Markup.Escape(host.DataDir));
        grid.AddRow("Control", Markup.Escape(host.ControlSocket));
        grid.AddRow("NBD socket", Markup.Escape(host.NbdSocket));
        grid.AddRow("NBD TCP", Markup.Escape(host.NbdTcp ?? "off"));
        grid.AddRow("Peer listen", Markup.Escape(host.PeerListen ?? "off"));
        grid.AddRow("Volumes", host.Volumes.ToString(CultureInfo.InvariantCulture));
        grid.AddRow("Running jobs", host.RunningJobs.ToString(CultureInfo.InvariantCulture));
        context.Console.Write(grid);
        return ExitCodes.Success;
    }
}
