using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace Roam.EndToEnd.Tests.Infrastructure;

/// <summary>The demo guest (scripts/build-guest.sh) and what it prints on its serial console.</summary>
internal static partial class Guest
{
    public static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Roam.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("repository root not found");
    }

    /// <summary>Builds the guest (cached: a no-op when up to date) and returns its directory.</summary>
    public static async Task<string> BuildGuestAsync()
    {
        var root = RepoRoot();
        var build = await Tools.RunAsync("bash", Path.Combine(root, "scripts", "build-guest.sh"));
        build.ShouldSucceed("scripts/build-guest.sh");
        return Path.Combine(root, ".cache", "guest");
    }

    [GeneratedRegex(@"^HB (\d+) (\d+) (\d+) (\d+)\s*$", RegexOptions.Multiline)]
    public static partial Regex Heartbeat();

    /// <summary>A file QEMU is still writing, read without disturbing it.</summary>
    public static string ReadShared(string path)
    {
        if (!File.Exists(path)) return "";
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        return new StreamReader(stream).ReadToEnd();
    }

    /// <summary>The last heartbeat in the file: (sequence, records written), or null.</summary>
    public static (long Seq, long Records)? LastHeartbeat(string path)
    {
        var matches = Heartbeat().Matches(ReadShared(path));
        if (matches.Count == 0) return null;
        var last = matches[^1];
        return (long.Parse(last.Groups[1].Value, CultureInfo.InvariantCulture), long.Parse(last.Groups[3].Value, CultureInfo.InvariantCulture));
    }

    /// <summary>Polls the serial log until <paramref name="until"/> holds for its last heartbeat; fails on a workload error or after <paramref name="timeout"/>.</summary>
    public static async Task<(long Seq, long Records)> WaitHeartbeatsAsync(string path, Func<(long Seq, long Records), bool> until, TimeSpan timeout, string what)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var text = ReadShared(path);
            Assert.False(text.Contains("WORKLOAD ERROR", StringComparison.Ordinal), $"{what}: {text[Math.Max(0, text.IndexOf("WORKLOAD ERROR", StringComparison.Ordinal) - 1500)..]}");
            Assert.DoesNotContain("ROAM-GUEST FAILED", text);
            if (LastHeartbeat(path) is { } hb && until(hb)) return hb;
            Assert.True(clock.Elapsed < timeout, $"{what}: not within {timeout.TotalSeconds} s; serial log tail:\n{text[Math.Max(0, text.Length - 2000)..]}");
            await Task.Delay(100);
        }
    }
}
