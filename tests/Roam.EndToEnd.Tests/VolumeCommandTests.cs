using Roam.EndToEnd.Tests.Infrastructure;

namespace Roam.EndToEnd.Tests;

public sealed class VolumeCommandTests : RoamdTest
{
    private const long GiB = 1L << 30;

    [Fact]
    public async Task Create_returns_the_volume_as_json_and_it_takes_no_space()
    {
        var created = (await Roam("volume", "create", "vol1", "--size", "10G", "--json")).ShouldSucceed().Json;

        Assert.Equal("vol1", created.GetProperty("name").GetString());
        Assert.Equal(10 * GiB, created.GetProperty("size").GetInt64());
        Assert.Equal(0, created.GetProperty("allocatedBytes").GetInt64());
        Assert.Equal(0, created.GetProperty("openConnections").GetInt32());
        Assert.Equal(Roamd.NbdUri("vol1"), created.GetProperty("nbdUris")[0].GetString());
        var shown = await ShowAsync("vol1");
        Assert.Equal(created.GetProperty("id").GetString(), shown.GetProperty("id").GetString());
        var data = Path.Combine(DataDir, "volumes", "vol1.raw");
        Assert.Equal(10 * GiB, new FileInfo(data).Length);
        Assert.Equal(0, await Images.AllocatedBytesAsync(data));
    }

    [Fact]
    public async Task Show_without_json_prints_size_and_nbd_uri()
    {
        (await Roam("volume", "create", "vol1", "--size", "1536M")).ShouldSucceed();

        var shown = (await Roam("volume", "show", "vol1")).ShouldSucceed().Stdout;

        Assert.Contains("1.5 GiB (1610612736 bytes)", shown);
        Assert.Contains(Roamd.NbdUri("vol1"), shown);
    }

    [Fact]
    public async Task Sizes_accept_binary_suffixes()
    {
        (string Text, long Bytes)[] cases =
        [
            ("512", 512), ("64K", 64 << 10), ("10M", 10L << 20), ("1.5G", 3 * GiB / 2), ("2GiB", 2 * GiB), ("3GB", 3 * GiB), ("1T", 1L << 40),
        ];
        for (int i = 0; i < cases.Length; i++)
        {
            var json = (await Roam("volume", "create", $"v{i}", "--size", cases[i].Text, "--json")).ShouldSucceed().Json;
            Assert.True(cases[i].Bytes == json.GetProperty("size").GetInt64(), $"--size {cases[i].Text}");
        }
    }

    [Fact]
    public async Task List_shows_every_volume_as_a_table_and_as_json()
    {
        (await Roam("volume", "create", "beta", "--size", "2G")).ShouldSucceed();
        (await Roam("volume", "create", "alpha", "--size", "1G")).ShouldSucceed();

        var table = (await Roam("volume", "list")).ShouldSucceed().Stdout;
        var json = (await Roam("volume", "list", "--json")).ShouldSucceed().Json;

        foreach (var header in new[] { "NAME", "SIZE", "ALLOCATED", "CONNECTIONS" }) Assert.Contains(header, table);
        var alphaLine = table.Split('\n').Single(l => l.Contains("alpha"));
        Assert.Contains("1.0 GiB", alphaLine);
        Assert.Equal(["alpha", "beta"], json.EnumerateArray().Select(v => v.GetProperty("name").GetString()));
        Assert.Equal([GiB, 2 * GiB], json.EnumerateArray().Select(v => v.GetProperty("size").GetInt64()));
    }

    [Fact]
    public async Task Invalid_names_are_refused_and_nothing_is_created()
    {
        foreach (var name in new[] { "bad/name", "a b", ".hidden", "x.tmp", new string('a', 65) })
            (await Roam("volume", "create", name, "--size", "1G")).ShouldFail(1, "invalid volume name");

        Assert.Equal(0, (await Roam("volume", "list", "--json")).ShouldSucceed().Json.GetArrayLength());
        Assert.Empty(Directory.GetFiles(Path.Combine(DataDir, "volumes")));
    }

    [Fact]
    public async Task Invalid_sizes_are_refused()
    {
        (await Roam("volume", "create", "v", "--size", "10X")).ShouldFail(1, "'10X' is not a size");
        (await Roam("volume", "create", "v", "--size", "1000")).ShouldFail(1, "multiple of 512");
        (await Roam("volume", "create", "v", "--size", "0")).ShouldFail(1, "positive multiple of 512");

        Assert.Equal(0, (await Roam("volume", "list", "--json")).ShouldSucceed().Json.GetArrayLength());
    }

    [Fact]
    public async Task Resize_grows_and_refuses_to_shrink()
    {
        (await Roam("volume", "create", "vol1", "--size", "1G")).ShouldSucceed();

        var grown = (await Roam("volume", "resize", "vol1", "--size", "2G", "--json")).ShouldSucceed().Json;
        var shrink = await Roam("volume", "resize", "vol1", "--size", "1G");

        Assert.Equal(2 * GiB, grown.GetProperty("size").GetInt64());
        shrink.ShouldFail(1, "shrinking to 1 GiB would destroy data");
        Assert.Equal(2 * GiB, (await ShowAsync("vol1")).GetProperty("size").GetInt64());
        Assert.Equal(2 * GiB, new FileInfo(Path.Combine(DataDir, "volumes", "vol1.raw")).Length);
    }

    [Fact]
    public async Task Delete_removes_the_volume_and_its_data()
    {
        (await Roam("volume", "create", "vol1", "--size", "1G")).ShouldSucceed();

        var deleted = (await Roam("volume", "delete", "vol1", "--json")).ShouldSucceed().Json;

        Assert.True(deleted.GetProperty("deleted").GetBoolean());
        (await Roam("volume", "show", "vol1")).ShouldFail(1, "no volume named 'vol1'");
        (await Roam("volume", "delete", "vol1")).ShouldFail(1, "no volume named 'vol1'");
        Assert.False(File.Exists(Path.Combine(DataDir, "volumes", "vol1.raw")));
    }

    [ToolFact("qemu-io")]
    public async Task Delete_is_refused_while_an_nbd_client_holds_the_volume()
    {
        (await Roam("volume", "create", "vol1", "--size", "64M")).ShouldSucceed();
        using var client = Tools.Start("qemu-io", "-f", "raw", Roamd.NbdUri("vol1"), "-c", "sleep 30000");
        try
        {
            await WaitForConnectionsAsync("vol1", 1);

            (await Roam("volume", "delete", "vol1")).ShouldFail(1, "volume 'vol1' is in use (1 open connection(s))");
            Assert.Equal(1, (await ShowAsync("vol1")).GetProperty("openConnections").GetInt32());
        }
        finally
        {
            client.Kill();
            await client.WaitForExitAsync();
        }
        await WaitForConnectionsAsync("vol1", 0);
        (await Roam("volume", "delete", "vol1")).ShouldSucceed();
    }
}
