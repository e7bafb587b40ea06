using System.Globalization;
using ScottPlot;

namespace Roam.Bench;

/// <summary>
/// roam-bench throughput-chart SINK.csv EVENTS.tsv OUT.png|OUT.svg [TITLE]: the seed's Figure 4a, throughput of one
/// connection from the migrating VM to a server over time, with the migration's phases marked. SINK.csv is
/// scripts/net-sink.py's (t_ms,bytes,connections per 10 ms); EVENTS.tsv has one "t_ms&lt;TAB&gt;label" per line on the
/// sink's clock (migration started, switch-over, address on the new subnet...), the first of them the move's start.
/// Also prints, per move (an event whose label starts with "switch-over"), the time from it until the throughput
/// (100 ms windows) is back to 90 % of what it was in the 2 s before the move began.
/// </summary>
internal static class ThroughputChart
{
    private const int WindowMs = 100;

    public static int Run(string csvPath, string eventsPath, string outPath, string title)
    {
        var rows = File.ReadLines(csvPath).Skip(1).Where(l => l.Length > 0).Select(l => l.Split(','))
            .Select(f => (T: double.Parse(f[0], CultureInfo.InvariantCulture), Bytes: double.Parse(f[1], CultureInfo.InvariantCulture))).ToList();
        var events = File.Exists(eventsPath)
            ? File.ReadLines(eventsPath).Where(l => l.Contains('\t', StringComparison.Ordinal)).Select(l => l.Split('\t', 2))
                .Select(f => (T: double.Parse(f[0], CultureInfo.InvariantCulture), Label: f[1].Trim())).OrderBy(e => e.T).ToList()
            : [];
        if (rows.Count == 0)
        {
            Console.Error.WriteLine($"throughput-chart: {csvPath} has no rows");
            return 1;
        }
        double interval = rows.Count > 1 ? rows[1].T - rows[0].T : 10;
        int perWindow = Math.Max(1, (int)Math.Round(WindowMs / interval));
        var xs = new List<double>();
        var mbps = new List<double>();
        for (int i = 0; i + perWindow <= rows.Count; i += perWindow)
        {
            double bytes = 0;
            for (int k = i; k < i + perWindow; k++) bytes += rows[k].Bytes;
            xs.Add((rows[i].T + WindowMs / 2.0) / 1000.0);
            mbps.Add(bytes * 8 / (WindowMs / 1000.0) / 1e6);
        }
        double t0 = events.Count > 0 ? events[0].T : 0;

        var plot = new Plot();
        var line = plot.Add.ScatterLine(xs.ToArray(), mbps.ToArray());
        line.LineWidth = 1.5f;
        line.LegendText = "throughput (100 ms windows)";
        foreach (var (t, label) in events)
        {
            var mark = plot.Add.VerticalLine(t / 1000.0);
            mark.LineWidth = 1;
            mark.LinePattern = LinePattern.Dashed;
            // In the legend, not on the line: the marks of one move are a few hundred ms apart and their labels would overlap.
            mark.LegendText = $"{label} ({t / 1000.0:0.00} s)";
        }
        plot.Title(title);
        plot.Legend.Alignment = Alignment.LowerRight;
        plot.XLabel("time (s, on the server's clock)");
        plot.YLabel("Mbit/s received by the server");
        plot.Axes.SetLimitsY(0, Math.Max(1, mbps.Max() * 1.15));
        if (outPath.EndsWith(".svg", StringComparison.OrdinalIgnoreCase)) plot.SaveSvg(outPath, 1200, 500);
        else plot.SavePng(outPath, 1200, 500);

        // Recovery after each switch-over: back to 90 % of the rate in the 2 s before the move began.
        double before = Median(xs.Zip(mbps).Where(p => p.First * 1000 >= t0 - 2000 && p.First * 1000 < t0).Select(p => p.Second));
        var recoveries = new List<string>();
        foreach (var (t, label) in events.Where(e => e.Label.StartsWith("switch-over", StringComparison.Ordinal)))
        {
            var back = xs.Zip(mbps).FirstOrDefault(p => p.First * 1000 > t && p.Second >= 0.9 * before);
            recoveries.Add(back == default ? "never" : ((back.First * 1000 - WindowMs / 2.0) - t).ToString("0", CultureInfo.InvariantCulture));
        }
        Console.WriteLine($"chart: {Path.GetFullPath(outPath)}; rate before the move {before:0.0} Mbit/s; recovery to 90 % after each switch-over (ms): " +
                          (recoveries.Count == 0 ? "none marked" : string.Join(", ", recoveries)));
        return 0;
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count == 0 ? 0 : sorted[sorted.Count / 2];
    }
}
