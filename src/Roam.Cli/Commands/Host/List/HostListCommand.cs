using System.CommandLine;
using Roam.Cli.Output;
using Roam.Control;
using Spectre.Console;

namespace Roam.Cli.Commands.Host.List;

internal sealed class HostListCommand : Command
{
    public HostListCommand(CliEnvironment environment) : base("list", "List the trusted peer hosts and whether a replication link with each is up")
    {
        Aliases.Add("ls");
        SetAction(environment.Action(ExecuteAsync));
    }

    private static async Task<int> ExecuteAsync(CliContext context, ParseResult parseResult, CancellationToken cancellationToken)
    {
        var peers = await context.Client.GetAsync("v1/peers", ControlJsonContext.Default.IReadOnlyListPeerView, cancellationToken).ConfigureAwait(false);
        if (context.Json)
        {
            context.WriteJson(peers, JsonOutput.Context.IReadOnlyListPeerView);
            return ExitCodes.Success;
        }
        if (peers.Count == 0)
        {
            context.Out.WriteLine("no trusted peers (add one with: roam host add NAME ADDR:PORT --fingerprint FP)");
            return ExitCodes.Success;
        }
        var table = new Table().Border(TableBorder.Simple)
            .AddColumn("NAME").AddColumn("ADDRESS").AddColumn(new TableColumn("FINGERPRINT").NoWrap()).AddColumn("CONNECTED");
        foreach (var p in peers)
            table.AddRow(Markup.Escape(p.Name), Markup.Escape(p.Address), Markup.Escape(p.Fingerprint),
                p.Connected switch { true => "yes", false => "no", null => "-" });
        context.Console.Write(table);
        return ExitCodes.Success;
    }
}
