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

    /// <summary>A heartbeat line: <c>HB seq ns records errors mem_passes mem_errors *crc</c>, crc the CRC-32 of the text
    /// before " *" (guest/workload.c). Match with <see cref="Heartbeats"/>, which checks the checksum.</summary>
    [GeneratedRegex(@"^HB (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) \*([0-9a-fA-F]{8})\r?$", RegexOptions.Multiline)]
    public static partial Regex Heartbeat();

    /// <summary>One heartbeat of the guest's workload.</summary>
    public readonly record struct Hb(long Seq, long Ns, long Records, long Errors, long MemPasses, long MemErrors);

    /// <summary>The heartbeat line's text with its checksum, as the guest prints it.</summary>
    public static string HeartbeatLine(long seq, long ns, long records, long errors = 0, long memPasses = 0, long memErrors = 0)
    {
        var text = string.Create(CultureInfo.InvariantCulture, $"HB {seq} {ns} {records} {errors} {memPasses} {memErrors}");
        return string.Create(CultureInfo.InvariantCulture, $"{text} *{System.IO.Hashing.Crc32.HashToUInt32(System.Text.Encoding.ASCII.GetBytes(text)):x8}");
    }

    /// <summary>The heartbeats in a console log whose checksum matches (a garbled line is none).</summary>
    public static IReadOnlyList<Hb> Heartbeats(string text)
    {
        var list = new List<Hb>();
        foreach (Match m in Heartbeat().Matches(text))
        {
            var line = m.Value.TrimEnd('\r');
            var body = line[..line.LastIndexOf(" *", StringComparison.Ordinal)];
            if (System.IO.Hashing.Crc32.HashToUInt32(System.Text.Encoding.ASCII.GetBytes(body)) != uint.Parse(m.Groups[7].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture))
                continue;
            long F(int i) => long.Parse(m.Groups[i].Value, CultureInfo.InvariantCulture);
            list.Add(new Hb(F(1), F(2), F(3), F(4), F(5), F(6)));
        }
        return list;
    }

    /// <summary>A file QEMU is still writing, read without disturbing it.</summary>
    public static string ReadShared(string path)
    {
        if (!File.Exists(path)) return "";
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        return new StreamReader(stream).ReadToEnd();
    }

    /// <summary>The last heartbeat in the file, or null.</summary>
    public static Hb? LastHb(string path) => Heartbeats(ReadShared(path)) is { Count: > 0 } all ? all[^1] : null;

    /// <summary>The last heartbeat in the file: (sequence, records written), or null.</summary>
    public static (long Seq, long Records)? LastHeartbeat(string path) => LastHb(path) is { } hb ? (hb.Seq, hb.Records) : null;

    /// <summary>Polls the serial log until <paramref name="until"/> holds for its last heartbeat; fails on a workload error (a
    /// WORKLOAD ERROR line, or a heartbeat counting disk or memory errors) or after <paramref name="timeout"/>.</summary>
    public static async Task<Hb> WaitHbAsync(string path, Func<Hb, bool> until, TimeSpan timeout, string what)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var text = ReadShared(path);
            Assert.False(text.Contains("WORKLOAD ERROR", StringComparison.Ordinal), $"{what}: {text[Math.Max(0, text.IndexOf("WORKLOAD ERROR", StringComparison.Ordinal) - 1500)..]}");
            Assert.DoesNotContain("ROAM-GUEST FAILED", text);
            if (Heartbeats(text) is { Count: > 0 } all)
            {
                var hb = all[^1];
                Assert.True(hb is { Errors: 0, MemErrors: 0 }, $"{what}: the workload counts errors: {hb}");
                if (until(hb)) return hb;
            }
            Assert.True(clock.Elapsed < timeout, $"{what}: not within {timeout.TotalSeconds} s; serial log tail:\n{text[Math.Max(0, text.Length - 2000)..]}");
            await Task.Delay(100);
        }
    }

    /// <summary><see cref="WaitHbAsync"/> with (sequence, records written).</summary>
    public static async Task<(long Seq, long Records)> WaitHeartbeatsAsync(string path, Func<(long Seq, long Records), bool> until, TimeSpan timeout, string what)
    {
        var hb = await WaitHbAsync(path, hb => until((hb.Seq, hb.Records)), timeout, what);
        return (hb.Seq, hb.Records);
    }
}
