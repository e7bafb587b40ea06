using Roam.EndToEnd.Tests.Infrastructure;

namespace Roam.EndToEnd.Tests;

/// <summary>`roam export` URIs and real NBD clients using them, with TCP switched on.</summary>
public sealed class NbdAccessTests : RoamdTest
{
    protected override string[] RoamdArguments => ["--nbd-listen", "127.0.0.1:0"];

    [Fact]
    public async Task Export_prints_the_unix_and_tcp_uris()
    {
        (await Roam("volume", "create", "vol1", "--size", "64M")).ShouldSucceed();
        var tcp = (await Roam("host", "status", "--json")).ShouldSucceed().Json.GetProperty("nbdTcp").GetString();

        var lines = (await Roam("export", "vol1")).ShouldSucceed().Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var json = (await Roam("export", "vol1", "--json")).ShouldSucceed().Json;

        Assert.Equal([Roamd.NbdUri("vol1"), $"nbd://{tcp}/vol1"], lines);
        Assert.Equal(lines, json.GetProperty("uris").EnumerateArray().Select(u => u.GetString()));
        (await Roam("export", "nope")).ShouldFail(1, "no volume named 'nope'");
    }

    [ToolFact("qemu-io")]
    public async Task Data_written_over_tcp_reads_back_over_the_unix_socket()
    {
        (await Roam("volume", "create", "vol1", "--size", "64M")).ShouldSucceed();
        var uris = (await Roam("export", "vol1", "--json")).ShouldSucceed().Json.GetProperty("uris");
        var unixUri = uris[0].GetString()!;
        var tcpUri = uris[1].GetString()!;

        (await Tools.RunAsync("qemu-io", "-f", "raw", tcpUri, "-c", "write -P 0x3c 4M 128k")).ShouldSucceed("qemu-io write over TCP");
        var read = await Tools.RunAsync("qemu-io", "-f", "raw", unixUri, "-c", "read -P 0x3c 4M 128k");

        read.ShouldSucceed("qemu-io read over the Unix socket");
        Assert.Contains("read 131072/131072 bytes at offset 4194304", read.Stdout);
        Assert.DoesNotContain("Pattern verification failed", read.Stdout + read.Stderr);
    }
}
