using Roam.EndToEnd.Tests.Infrastructure;
using static Roam.EndToEnd.Tests.Infrastructure.Guest;

namespace Roam.EndToEnd.Tests;

/// <summary>guest/hb-stats.py, which the VM tests trust to tell a stopped guest from a garbled console line.</summary>
public sealed class HbStatsTests : IDisposable
{
    private readonly TestDirectory _dir = new();

    private async Task<ToolResult> StatsAsync(params string[] heartbeats)
    {
        var path = Path.Combine(_dir.Path, "serial");
        await File.WriteAllTextAsync(path, "ROAM-GUEST READY\nWORKLOAD START x\n" + string.Concat(heartbeats.Select(h => h + "\n")));
        return await Tools.RunAsync("python3", Path.Combine(RepoRoot(), "guest", "hb-stats.py"), path);
    }

    [RequiresToolsFact("python3")]
    public async Task A_missing_heartbeat_is_a_problem()
    {
        var result = await StatsAsync("HB 119 1000 5 0", "HB 120 2000 6 0", "HB 122 4000 8 0", "HB 123 5000 9 0");
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("heartbeat seq jumps 120 -> 122", result.Stdout);
    }

    [RequiresToolsFact("python3")]
    public async Task A_heartbeat_with_a_digit_logged_twice_is_one_garbled_line_not_a_jump()
    {
        // QEMU logs a console byte it could not send (roamd's reader killed) and again when the retry sends it.
        var result = await StatsAsync("HB 119 1000 5 0", "HB 120 2000 6 0", "HB 1121 3000 7 0", "HB 122 4000 8 0", "HB 123 5000 9 0");
        Assert.True(result.ExitCode == 0, result.Stdout);
    }

    public void Dispose() => _dir.Dispose();
}
