using System.Globalization;
using Roam.Control;
using Spectre.Console;

namespace Roam.Cli.Output;

/// <summary>Volumes as tables for people; --json prints the same records instead.</summary>
internal static class VolumeOutput
{
    public static void WriteTable(IAnsiConsole console, IReadOnlyList<VolumeView> volumes)
    {
        if (volumes.Count == 0)
        {
            console.Profile.Out.Writer.WriteLine("no volumes (create one with: roam volume create NAME --size 10G)");
            return;
        }
        var table = new Table().Border(TableBorder.Simple)
            .AddColumn("NAME")
            .AddColumn(new TableColumn("SIZE").RightAligned())
            .AddColumn(new TableColumn("ALLOCATED").RightAligned())
            .AddColumn(new TableColumn("CONNECTIONS").RightAligned());
        foreach (var v in volumes)
            table.AddRow(Markup.Escape(v.Name), Sizes.Format(v.Size), Sizes.Format(v.AllocatedBytes), v.OpenConnections.ToString(CultureInfo.InvariantCulture));
        console.Write(table);
    }

    public static void WriteDetails(IAnsiConsole console, VolumeView v)
    {
        var grid = new Grid().AddColumn(new GridColumn().NoWrap().PadRight(2)).AddColumn();
        grid.AddRow("Name", Markup.Escape(v.Name));
        grid.AddRow("Size", $"{Sizes.Format(v.Size)} ({v.Size.ToString(CultureInfo.InvariantCulture)} bytes)");
        grid.AddRow("Allocated", $"{Sizes.Format(v.AllocatedBytes)} ({v.AllocatedBytes.ToString(CultureInfo.InvariantCulture)} bytes)");
        grid.AddRow("Connections", v.OpenConnections.ToString(CultureInfo.InvariantCulture));
        grid.AddRow("Id", v.Id.ToString());
        grid.AddRow("Created", v.Created.ToString("u", CultureInfo.InvariantCulture));
        for (int i = 0; i < v.NbdUris.Count; i++) grid.AddRow(i == 0 ? "NBD" : "", Markup.Escape(v.NbdUris[i]));
        if (v.Replication is { } r)
        {
            grid.AddRow("Role", r.Role == VolumeRoles.Replica
                ? $"replica of {Markup.Escape(r.PrimaryPeer ?? "?")} ({(r.PrimaryConnected ? "attached" : "not attached")}), read-only"
                : "primary");
            if (r.Generation is { } generation) grid.AddRow("Generation", generation.ToString());
            if (r.WritesRefused)
                grid.AddRow("[red]Writes[/]", "[red]refused[/]: " + Markup.Escape(r.HandOverPeer is { } to
                    ? $"a hand-over to {to} is in doubt; read-only until {to} says whether it took over"
                    : r.Role == VolumeRoles.Replica
                        ? $"a replica of {r.PrimaryPeer ?? "another host"}; make it writable here with: roam volume promote {v.Name}"
                        : "this host does not accept writes to it now"));
            if (r.Notice is { } notice) grid.AddRow("Notice", Markup.Escape(notice));
        }
        if (v.Replication is { } split && split.Replicas.Where(x => x.State == ReplicaStates.SplitBrain).Select(x => x.Peer).ToList() is { Count: > 0 } torn)
            grid.AddRow("[red]Split brain[/]", Markup.Escape(
                $"split brain with {string.Join(", ", torn)}: both copies were written apart and nothing syncs until it is resolved. "
                + $"Keep one side's data with, on both hosts: roam volume resolve {v.Name} --keep HOST"));
        if (v.Replication is { Role: VolumeRoles.Primary, PrimaryPeer: { } former, Replicas.Count: 0, Notice: null })
            grid.AddRow("Promoted", Markup.Escape(
                $"promoted from a replica of {former}, not replicated since: this host cannot tell whether {former} wrote too. "
                + $"If `roam volume show {v.Name}` on {former} reports a split brain, keep one side's data with, on both hosts: roam volume resolve {v.Name} --keep HOST"));
        if (v.Migration is { } m) grid.AddRow("Migration", Markup.Escape(MigrationOutput.Status(m)));
        console.Write(grid);
        if (v.Replication is { Replicas.Count: > 0 } replication)
        {
            var table = new Table().Border(TableBorder.Simple)
                .AddColumn("REPLICA")
                .AddColumn("MODE")
                .AddColumn("STATE")
                .AddColumn(new TableColumn("OUT OF SYNC").RightAligned())
                .AddColumn(new TableColumn("LAG").RightAligned())
                .AddColumn(new TableColumn("SENT").RightAligned())
                .AddColumn(new TableColumn("LIMIT").RightAligned());
            foreach (var replica in replication.Replicas)
                table.AddRow(Markup.Escape(replica.Peer), Markup.Escape(replica.Mode), Markup.Escape(replica.State switch { ReplicaStates.SplitBrain => "split brain", ReplicaStates.Parted => "parted", _ => replica.State }),
                    Sizes.Format(replica.BytesOutOfSync), Sizes.Seconds(replica.LagSeconds), Markup.Escape(Sent(replica)),
                    replica.Bandwidth > 0 ? Sizes.Format(replica.Bandwidth) + "/s" : "-");
            console.Write(table);
            foreach (var replica in replication.Replicas.Where(x => x.Detail is not null))
                console.Profile.Out.Writer.WriteLine($"  {replica.Peer}: {replica.Detail}");
        }
    }

    /// <summary>"1.2 GiB" or, when LZ4 kept bytes off the wire, "300 MiB (LZ4 saved 900 MiB)".</summary>
    private static string Sent(ReplicaView replica) => replica.BytesSavedByCompression > 0
        ? $"{Sizes.Format(replica.BytesSent)} (LZ4 saved {Sizes.Format(replica.BytesSavedByCompression)})"
        : Sizes.Format(replica.BytesSent);
}
