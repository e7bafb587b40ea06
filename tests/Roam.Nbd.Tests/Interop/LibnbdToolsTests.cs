using System.Text.Json;
using Roam.Testing;

namespace Roam.Nbd.Tests.Interop;

/// <summary>nbdinfo and nbdcopy (libnbd), which negotiate everything: GO, LIST, structured replies, base:allocation, multi-conn.</summary>
public sealed class LibnbdToolsTests : InteropTestBase
{
    private const int MiB = 1024 * 1024;

    [ToolFact("nbdinfo")]
    public async Task Nbdinfo_json_reports_size_and_capabilities()
    {
        Server.CreateVolume("disk", 5 * MiB);

        var result = (await Tools.RunAsync("nbdinfo", "--json", Server.Uri("disk"))).ShouldSucceed();

        using var json = JsonDocument.Parse(result.Stdout);
        var root = json.RootElement;
        Assert.Equal("newstyle-fixed", root.GetProperty("protocol").GetString());
        Assert.True(root.GetProperty("structured").GetBoolean());
        var export = Assert.Single(root.GetProperty("exports").EnumerateArray());
        Assert.Equal("disk", export.GetProperty("export-name").GetString());
        Assert.Equal(5 * MiB, export.GetProperty("export-size").GetInt64());
        Assert.Contains("base:allocation", export.GetProperty("contexts").EnumerateArray().Select(c => c.GetString()));
        Assert.False(export.GetProperty("is_read_only").GetBoolean());
        foreach (var capability in new[] { "can_flush", "can_fua", "can_trim", "can_zero", "can_fast_zero", "can_cache", "can_df", "can_multi_conn" })
            Assert.True(export.GetProperty(capability).GetBoolean(), capability);
        Assert.Equal(1, export.GetProperty("block_size_minimum").GetInt64());
        Assert.Equal(4096, export.GetProperty("block_size_preferred").GetInt64());
        Assert.Equal(32 * MiB, export.GetProperty("block_size_maximum").GetInt64());
    }

    [ToolFact("nbdinfo")]
    public async Task Nbdinfo_list_names_every_volume()
    {
        Server.CreateVolume("alpha", MiB);
        Server.CreateVolume("beta", 2 * MiB);

        var result = (await Tools.RunAsync("nbdinfo", "--list", "--json", $"nbd+unix://?socket={Server.SocketPath}")).ShouldSucceed();

        using var json = JsonDocument.Parse(result.Stdout);
        var exports = json.RootElement.GetProperty("exports").EnumerateArray()
            .ToDictionary(e => e.GetProperty("export-name").GetString()!, e => e.GetProperty("export-size").GetInt64());
        Assert.Equal(new Dictionary<string, long> { ["alpha"] = MiB, ["beta"] = 2 * MiB }, exports);
    }

    [ToolFact("nbdinfo")]
    public async Task Nbdinfo_map_shows_written_ranges_as_data_and_the_rest_as_holes()
    {
        Server.CreateVolume("disk", MiB);
        await using (var client = await Server.ConnectAndGoAsync("disk"))
        {
            await client.WriteAsync(64 * 1024, new byte[64 * 1024].Select((_, i) => (byte)(i | 1)).ToArray());
            await client.WriteAsync(512 * 1024, Enumerable.Repeat((byte)0xee, 64 * 1024).ToArray());
            await client.WriteAsync(520 * 1024, new byte[8 * 1024]);              // zeros written: still data
            await client.TrimAsync(512 * 1024, 8 * 1024);                            // punched again
        }

        var result = (await Tools.RunAsync("nbdinfo", "--map", Server.Uri("disk"))).ShouldSucceed();

        var map = result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Select(f => (Offset: long.Parse(f[0]), Length: long.Parse(f[1]), Type: int.Parse(f[2]), Description: f[3]))
            .ToArray();
        Assert.Equal(
            [
                (0L, 64L * 1024, 3, "hole,zero"),
                (64L * 1024, 64L * 1024, 0, "data"),
                (128L * 1024, 392L * 1024, 3, "hole,zero"),
                (520L * 1024, 56L * 1024, 0, "data"),
                (576L * 1024, 448L * 1024, 3, "hole,zero"),
            ],
            map);
    }

    [ToolFact("nbdcopy")]
    public async Task Nbdcopy_in_and_out_over_four_connections_round_trips_the_data()
    {
        const long size = 24 * MiB;
        Server.CreateVolume("disk", size);
        var source = SparseImage("source.raw", size, seed: 2, (0, 3 * MiB), (5 * MiB + 17, 700_000), (20 * MiB, 4 * MiB));
        var back = Server.ScratchPath("back.raw");

        (await Tools.RunAsync("nbdcopy", "--connections=4", source, Server.Uri("disk"))).ShouldSucceed();
        (await Tools.RunAsync("nbdcopy", "--connections=4", Server.Uri("disk"), back)).ShouldSucceed();

        Assert.Equal(Sha256(source), Sha256(back));
    }

    [ToolFact("nbdcopy")]
    public async Task Nbdcopy_of_a_sparse_image_onto_a_dirty_volume_zeroes_the_holes_and_keeps_them_sparse()
    {
        const long size = 16 * MiB;
        Server.CreateVolume("disk", size);
        var dirt = Server.ScratchPath("dirt.raw");
        await File.WriteAllBytesAsync(dirt, Enumerable.Repeat((byte)0xff, (int)size).ToArray());
        (await Tools.RunAsync("nbdcopy", dirt, Server.Uri("disk"))).ShouldSucceed();
        var source = SparseImage("source.raw", size, seed: 3, (MiB, MiB), (10 * MiB, 512 * 1024));
        var back = Server.ScratchPath("back.raw");

        (await Tools.RunAsync("nbdcopy", "--connections=4", source, Server.Uri("disk"))).ShouldSucceed();
        (await Tools.RunAsync("nbdcopy", Server.Uri("disk"), back)).ShouldSucceed();

        Assert.Equal(Sha256(source), Sha256(back));
        long allocated = Server.Store.Status("disk").AllocatedBytes;
        Assert.InRange(allocated, 1536 * 1024, 4 * MiB); // the data, give or take block rounding; not the 16 MiB of dirt
    }
}
