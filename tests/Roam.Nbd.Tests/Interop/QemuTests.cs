using System.Text.Json;
using Roam.Nbd.Protocol;
using Roam.Testing;

namespace Roam.Nbd.Tests.Interop;

/// <summary>qemu-img and qemu-io, the clients a VM's disk actually meets.</summary>
public sealed class QemuTests : InteropTestBase
{
    [ToolFact("qemu-img")]
    public async Task Qemu_img_info_reports_the_volume_size()
    {
        Server.CreateVolume("disk", 3 * 1024 * 1024 + 512);

        var result = (await Tools.RunAsync("qemu-img", "info", "-f", "raw", "--output=json", Server.Uri("disk"))).ShouldSucceed();

        using var json = JsonDocument.Parse(result.Stdout);
        Assert.Equal(3 * 1024 * 1024 + 512, json.RootElement.GetProperty("virtual-size").GetInt64());
    }

    [ToolFact("qemu-img")]
    public async Task Qemu_img_convert_in_and_out_round_trips_a_sparse_image()
    {
        const long size = 8 * 1024 * 1024;
        Server.CreateVolume("disk", size);
        var source = SparseImage("source.raw", size, seed: 1, (0, 70_000), (1_000_000, 300_000), (size - 4096, 4096));
        var back = Server.ScratchPath("back.raw");

        (await Tools.RunAsync("qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", source, Server.Uri("disk"))).ShouldSucceed();
        (await Tools.RunAsync("qemu-img", "convert", "-f", "raw", "-O", "raw", Server.Uri("disk"), back)).ShouldSucceed();

        Assert.Equal(Sha256(source), Sha256(back));
        Assert.Equal(await File.ReadAllBytesAsync(source), await File.ReadAllBytesAsync(Server.VolumePath("disk")));
    }

    [ToolFact("qemu-io")]
    public async Task Qemu_io_write_read_zero_and_discard_patterns_verify()
    {
        Server.CreateVolume("disk", 1024 * 1024);

        var result = await QemuIoAsync(Server.Uri("disk"),
            "write -P 0xab 0 256k",
            "read -P 0xab 0 256k",
            "write -f -P 0xcd 4097 1000",         // FUA, unaligned
            "read -P 0xcd 4097 1000",
            "write -z 64k 64k",                   // WRITE_ZEROES
            "read -P 0 64k 64k",
            "write -z -u 128k 64k",               // WRITE_ZEROES that may unmap
            "read -P 0 128k 64k",
            "discard 192k 64k",                   // TRIM
            "read -P 0 192k 64k",
            "aio_write -P 0x11 512k 4k",          // several in flight
            "aio_write -P 0x22 516k 4k",
            "aio_flush",
            "read -P 0x11 512k 4k",
            "read -P 0x22 516k 4k",
            "flush");

        AssertQemuIoClean(result);
        await using var client = await Server.ConnectAndGoAsync("disk");
        var data = (await client.ReadAsync(0, 600 * 1024)).Data;
        Assert.All(data[..4097], b => Assert.Equal(0xab, b));
        Assert.All(data[4097..5097], b => Assert.Equal(0xcd, b));
        Assert.All(data[5097..(64 * 1024)], b => Assert.Equal(0xab, b));
        Assert.All(data[(64 * 1024)..(256 * 1024)], b => Assert.Equal(0, b));
        Assert.All(data[(512 * 1024)..(516 * 1024)], b => Assert.Equal(0x11, b));
        Assert.All(data[(516 * 1024)..(520 * 1024)], b => Assert.Equal(0x22, b));
        var status = await client.BlockStatusAsync(192 * 1024, 64 * 1024);
        Assert.Equal(new Roam.Testing.Nbd.BlockExtent(64 * 1024, NbdAllocationFlags.Hole | NbdAllocationFlags.Zero), Assert.Single(status.Extents));
    }

    [ToolFact("qemu-io")]
    public async Task Two_qemu_io_clients_at_once_each_see_their_own_writes()
    {
        Server.CreateVolume("disk", 4 * 1024 * 1024);

        var results = await Task.WhenAll(
            QemuIoAsync(Server.Uri("disk"), "write -P 0x61 0 2M", "read -P 0x61 0 2M", "flush"),
            QemuIoAsync(Server.Uri("disk"), "write -P 0x62 2M 2M", "read -P 0x62 2M 2M", "flush"));

        Assert.All(results, AssertQemuIoClean);
        var raw = await File.ReadAllBytesAsync(Server.VolumePath("disk"));
        Assert.All(raw[..(2 * 1024 * 1024)], b => Assert.Equal(0x61, b));
        Assert.All(raw[(2 * 1024 * 1024)..], b => Assert.Equal(0x62, b));
    }
}
