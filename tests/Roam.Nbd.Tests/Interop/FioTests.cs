using System.Text.Json;
using Roam.Testing;

namespace Roam.Nbd.Tests.Interop;

/// <summary>fio through its nbd engine (libnbd): deep queues of random I/O with checksummed blocks.</summary>
public sealed class FioTests : InteropTestBase
{
    [ToolFact("fio")]
    public async Task Fio_random_writes_at_depth_16_verify_and_a_verify_only_run_catches_corruption()
    {
        Server.CreateVolume("disk", 32 * 1024 * 1024);
        string[] job =
        [
            "--name=verify", "--ioengine=nbd", $"--uri={Server.Uri("disk")}", "--rw=randwrite", "--bs=4k", "--size=32M",
            "--iodepth=16", "--verify=crc32c", "--randseed=4242", "--verify_state_save=0", "--output-format=json",
        ];

        var write = await FioAsync([.. job, "--do_verify=1"], "write.json");
        var check = await FioAsync([.. job, "--verify_only=1"], "verify.json");
        await using (var client = await Server.ConnectAndGoAsync("disk"))
            await client.WriteAsync(5 * 1024 * 1024 + 100, new byte[] { 1, 2, 3, 4 });
        var corrupt = await Tools.RunAsync("fio", [.. job, "--verify_only=1", $"--output={Server.ScratchPath("corrupt.json")}"], TimeSpan.FromMinutes(2));

        // Every block was written at depth 16 and read back; the verify-only run re-read them all, and
        // the one damaged block after it is reported.
        Assert.Equal(32L * 1024 * 1024, write.GetProperty("write").GetProperty("io_bytes").GetInt64());
        Assert.Equal(32L * 1024 * 1024, write.GetProperty("read").GetProperty("io_bytes").GetInt64());
        Assert.Equal(32L * 1024 * 1024, check.GetProperty("read").GetProperty("io_bytes").GetInt64());
        Assert.NotEqual(0, corrupt.ExitCode);
        Assert.Contains("verify failed at file verify.0.0 offset 5242880", corrupt.Stderr);
    }

    /// <summary>Runs fio and returns its one job's JSON; any error, verify failures included, fails the test.</summary>
    private async Task<JsonElement> FioAsync(string[] args, string output)
    {
        var path = Server.ScratchPath(output);
        // The nbd engine prints a line of its own on stdout, so the JSON goes through a file.
        var result = (await Tools.RunAsync("fio", [.. args, $"--output={path}"], TimeSpan.FromMinutes(2))).ShouldSucceed();
        Assert.DoesNotContain("verify failed", result.Stderr);
        using var json = JsonDocument.Parse(await File.ReadAllTextAsync(path));
        var jobResult = Assert.Single(json.RootElement.GetProperty("jobs").EnumerateArray());
        Assert.Equal(0, jobResult.GetProperty("error").GetInt32());
        return jobResult.Clone();
    }
}
