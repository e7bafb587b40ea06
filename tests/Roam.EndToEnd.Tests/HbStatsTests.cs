using System.Text.Json;
using Roam.EndToEnd.Tests.Infrastructure;
using static Roam.EndToEnd.Tests.Infrastructure.Guest;

namespace Roam.EndToEnd.Tests;

/// <summary>guest/hb-stats.py, which the VM tests trust to tell a stopped guest from a garbled console line.</summary>
public sealed class HbStatsTests : IDisposable
{
    private readonly TestDirectory _dir = new();

    private async Task<(ToolResult Result, JsonElement Json)> StatsAsync(params string[] lines)
    {
        var path = Path.Combine(_dir.Path, "serial");
        await File.WriteAllTextAsync(path, "ROAM-GUEST READY\nWORKLOAD START x\nWORKLOAD MEM pages=16384 dirty=32/s\n" + string.Concat(lines.Select(h => h + "\n")));
        var script = Path.Combine(RepoRoot(), "guest", "hb-stats.py");
        var json = await Tools.RunAsync("python3", script, path, "--json");
        var result = await Tools.RunAsync("python3", script, path);
        return (result, JsonDocument.Parse(json.Stdout).RootElement.Clone());
    }

    /// <summary>Heartbeats FROM..TO, 10 ms apart, a record and a memory pass every so often.</summary>
    private static IEnumerable<string> Beats(long from, long to, long memErrors = 0) =>
        Enumerable.Range((int)from, (int)(to - from + 1)).Select(i => HeartbeatLine(i, 1_000_000_000L + i * 10_000_000L, i / 2, 0, i / 200, memErrors));

    [ToolFact("python3")]
    public async Task Consecutive_checksummed_heartbeats_pass_and_their_memory_figures_are_reported()
    {
        var (result, json) = await StatsAsync([.. Beats(100, 999)]);
        Assert.True(result.ExitCode == 0, result.Stdout);
        Assert.Equal(900, json.GetProperty("heartbeats").GetInt32());
        Assert.Equal(999 / 200, json.GetProperty("mem_passes").GetInt32());
        Assert.Equal(0, json.GetProperty("mem_errors").GetInt32());
        Assert.Equal(0, json.GetProperty("garbled_lines").GetInt32());
        Assert.Contains("mem_passes=4 mem_errors=0", result.Stdout);
    }

    [ToolFact("python3")]
    public async Task A_missing_heartbeat_is_a_problem()
    {
        var (result, _) = await StatsAsync([.. Beats(119, 120), .. Beats(122, 123)]);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("heartbeat seq jumps 120 -> 122", result.Stdout);
    }

    [ToolFact("python3")]
    public async Task A_heartbeat_with_a_digit_logged_twice_is_a_garbled_line_not_a_problem()
    {
        // QEMU's console log had "HB 6384 737786228398 ..." for 73778622839: the line no longer matches its checksum.
        var beats = Beats(100, 400).ToList();
        var i = beats.FindIndex(b => b.StartsWith("HB 250 ", StringComparison.Ordinal));
        beats[i] = beats[i].Replace("HB 250 35", "HB 250 335", StringComparison.Ordinal);
        var j = beats.FindIndex(b => b.StartsWith("HB 300 ", StringComparison.Ordinal));
        beats[j] = "HB 3300" + beats[j]["HB 300".Length..]; // a duplicated digit in the sequence number: no jump either
        var (result, json) = await StatsAsync([.. beats]);
        Assert.True(result.ExitCode == 0, result.Stdout);
        Assert.Equal(2, json.GetProperty("garbled_lines").GetInt32());
        Assert.Equal(299, json.GetProperty("heartbeats").GetInt32());
        Assert.Contains("garbled_lines=2", result.Stdout);
    }

    [ToolFact("python3")]
    public async Task Many_garbled_lines_are_a_problem()
    {
        var beats = Beats(100, 400).Select((b, k) => k % 20 == 5 ? b.Replace(" *", " 7 *", StringComparison.Ordinal) : b).ToArray();
        var (result, json) = await StatsAsync(beats);
        Assert.Equal(1, result.ExitCode);
        Assert.Equal(15, json.GetProperty("garbled_lines").GetInt32());
        Assert.Contains("heartbeat lines garbled", result.Stdout);
    }

    [ToolFact("python3")]
    public async Task A_heartbeat_torn_across_a_switch_over_in_a_stamped_log_is_not_a_problem()
    {
        static string Stamp(int k, string line) => $"2026-01-31T12:00:{k / 100 % 60:00}.{k % 100:00}0000Z {line}";
        var torn = HeartbeatLine(201, 1_000_000_000L + 201 * 10_000_000L, 100, 0, 1);
        var lines = Beats(100, 200).Select((b, k) => Stamp(k, b))
            .Append(Stamp(150, torn[..9])).Append(Stamp(190, torn[9..]))
            .Concat(Beats(202, 300).Select((b, k) => Stamp(200 + k, b)));
        var (result, json) = await StatsAsync([.. lines]);
        Assert.True(result.ExitCode == 0, result.Stdout);
        Assert.Equal(0, json.GetProperty("garbled_lines").GetInt32());
        Assert.Equal(1, json.GetProperty("torn_lines").GetInt32());
    }

    [ToolFact("python3")]
    public async Task A_memory_error_is_a_problem()
    {
        var (result, json) = await StatsAsync([.. Beats(100, 300), .. Beats(301, 400, memErrors: 1)]);
        Assert.Equal(1, result.ExitCode);
        Assert.Equal(1, json.GetProperty("mem_errors").GetInt32());
        Assert.Contains("workload reports 1 memory errors", result.Stdout);
    }

    [ToolFact("python3")]
    public async Task A_memory_check_without_a_pass_for_a_minute_of_guest_time_is_stuck_but_a_long_pause_is_not()
    {
        // 70 s of guest time, mem_passes standing still at 3.
        var stuck = Enumerable.Range(0, 141).Select(i => HeartbeatLine(i, 1_000_000_000L + i * 500_000_000L, i, 0, 3, 0)).ToArray();
        var (result, _) = await StatsAsync(stuck);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("memory check stuck", result.Stdout);

        // A migration pause: the guest's clock stands still (heartbeats 10 ms apart in its time) however long it took.
        var (paused, _) = await StatsAsync([.. Beats(100, 399)]);
        Assert.True(paused.ExitCode == 0, paused.Stdout);
    }

    public void Dispose() => _dir.Dispose();
}
