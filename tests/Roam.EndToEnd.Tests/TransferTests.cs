using Roam.EndToEnd.Tests.Infrastructure;
using Spectre.Console.Testing;

namespace Roam.EndToEnd.Tests;

/// <summary>Import and export of raw and qcow2 images through roamd's jobs.</summary>
public sealed class TransferTests : RoamdTest
{
    private const long MiB = 1L << 20;
    private const long ImageSize = 64 * MiB;

    /// <summary>
    /// 64 MiB with 1 MiB of data at the start, 300 KiB at an unaligned offset, 64 KiB at the end, and
    /// 2 MiB of explicit (allocated) zeros that an import should not allocate.
    /// </summary>
    private string MakeSparseImage(string name = "source.raw", long size = ImageSize)
    {
        var path = Dir.File(name);
        Images.CreateSparse(path, size, (0, (int)MiB), (10 * MiB + 123, 300 * 1024), (size - 64 * 1024, 64 * 1024));
        Images.WriteZeros(path, 20 * MiB, 2 * (int)MiB);
        return path;
    }

    [Fact]
    public async Task Raw_import_and_export_round_trip_the_data_and_keep_holes()
    {
        var source = MakeSparseImage();
        var exported = Dir.File("exported.raw");
        long sourceAllocated = await Images.AllocatedBytesAsync(source);

        var import = (await Roam("volume", "import", "vol1", source, "--json")).ShouldSucceed().Json;
        var volume = await ShowAsync("vol1");
        var export = (await Roam("volume", "export", "vol1", exported, "--json")).ShouldSucceed().Json;

        Assert.Equal("succeeded", import.GetProperty("state").GetString());
        Assert.Equal("raw", import.GetProperty("format").GetString());
        Assert.Equal(ImageSize, volume.GetProperty("size").GetInt64());
        Assert.Equal(Images.Sha256(source), Images.Sha256(exported));
        // Data is about 1.4 MiB; the 2 MiB of written zeros must not be copied, by import nor by export.
        long volumeAllocated = volume.GetProperty("allocatedBytes").GetInt64();
        long exportedAllocated = await Images.AllocatedBytesAsync(exported);
        Assert.True(sourceAllocated >= 3 * MiB, $"the source image should have its zeros allocated ({sourceAllocated})");
        Assert.InRange(volumeAllocated, 1 * MiB + 364 * 1024, 2 * MiB);
        Assert.InRange(exportedAllocated, 1 * MiB + 364 * 1024, 2 * MiB);
        Assert.Equal(volumeAllocated, export.GetProperty("allocatedBytes").GetInt64());
        Assert.Equal(ImageSize, new FileInfo(exported).Length);
    }

    [Fact]
    public async Task Import_of_an_odd_sized_file_rounds_the_volume_up_to_512_bytes()
    {
        var source = Dir.File("odd.raw");
        Images.CreateSparse(source, 1000 * 1000 + 1, (0, 4096), (1000 * 1000 - 99, 100));
        var exported = Dir.File("odd-exported.raw");

        (await Roam("volume", "import", "odd", source)).ShouldSucceed();
        (await Roam("volume", "export", "odd", exported)).ShouldSucceed();

        Assert.Equal(1000448, (await ShowAsync("odd")).GetProperty("size").GetInt64()); // next multiple of 512
        var original = await File.ReadAllBytesAsync(source);
        var roundTripped = await File.ReadAllBytesAsync(exported);
        Assert.Equal(1000448, roundTripped.Length);
        Assert.Equal(original, roundTripped[..original.Length]);
        Assert.All(roundTripped[original.Length..], b => Assert.Equal(0, b));
    }

    [ToolFact("qemu-img")]
    public async Task Qcow2_import_is_detected_by_its_magic_and_matches_the_source()
    {
        var raw = MakeSparseImage();
        var qcow2 = Dir.File("source.qcow2");
        (await Tools.RunAsync("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, qcow2)).ShouldSucceed("qemu-img convert");

        var import = (await Roam("volume", "import", "vol1", qcow2, "--json")).ShouldSucceed().Json;

        Assert.Equal("qcow2", import.GetProperty("format").GetString());
        Assert.Equal(ImageSize, (await ShowAsync("vol1")).GetProperty("size").GetInt64());
        var compare = await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "raw", raw, Roamd.NbdUri("vol1"));
        Assert.True(compare.ExitCode == 0, $"qemu-img compare: {compare.Stdout}{compare.Stderr}");
        Assert.InRange((await ShowAsync("vol1")).GetProperty("allocatedBytes").GetInt64(), 1 * MiB, 4 * MiB); // still sparse
    }

    [ToolFact("qemu-img")]
    public async Task Qcow2_export_writes_a_qcow2_equal_to_the_volume()
    {
        var raw = MakeSparseImage();
        var qcow2 = Dir.File("exported.qcow2");
        (await Roam("volume", "import", "vol1", raw)).ShouldSucceed();

        var export = (await Roam("volume", "export", "vol1", qcow2, "--json")).ShouldSucceed().Json;

        Assert.Equal("qcow2", export.GetProperty("format").GetString()); // from the .qcow2 extension
        var info = await Tools.RunAsync("qemu-img", "info", "--output=json", qcow2);
        info.ShouldSucceed("qemu-img info");
        Assert.Contains("\"format\": \"qcow2\"", info.Stdout);
        var compare = await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "qcow2", raw, qcow2);
        Assert.True(compare.ExitCode == 0, $"qemu-img compare: {compare.Stdout}{compare.Stderr}");
        var differs = await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "qcow2", MakeSparseImage("other.raw", ImageSize + 512), qcow2);
        Assert.NotEqual(0, differs.ExitCode); // the comparison can fail
    }

    [Fact]
    public async Task Export_refuses_to_overwrite_a_file_unless_forced()
    {
        (await Roam("volume", "import", "vol1", MakeSparseImage())).ShouldSucceed();
        var target = Dir.File("existing.raw");
        await File.WriteAllTextAsync(target, "precious");

        var refused = await Roam("volume", "export", "vol1", target);
        Assert.Equal("precious", await File.ReadAllTextAsync(target));
        var forced = await Roam("volume", "export", "vol1", target, "--force");

        refused.ShouldFail(1, $"{target} already exists; add --force to overwrite it");
        forced.ShouldSucceed();
        Assert.Equal(Images.Sha256(Dir.File("source.raw")), Images.Sha256(target));
        Assert.Empty(Directory.GetFiles(Dir.Path, "*.tmp")); // no temporary file left beside it
    }

    [Fact]
    public async Task Import_refuses_an_existing_volume_or_a_missing_file_and_creates_nothing()
    {
        (await Roam("volume", "create", "taken", "--size", "1M")).ShouldSucceed();
        var source = MakeSparseImage();

        (await Roam("volume", "import", "taken", source)).ShouldFail(1, "volume 'taken' already exists");
        (await Roam("volume", "import", "fresh", Dir.File("missing.raw"))).ShouldFail(1, $"no such file: {Dir.File("missing.raw")}");
        (await Roam("volume", "import", "bad/name", source)).ShouldFail(1, "invalid volume name");
        (await Roam("volume", "export", "nope", Dir.File("x.raw"))).ShouldFail(1, "no volume named 'nope'");

        var names = (await Roam("volume", "list", "--json")).ShouldSucceed().Json.EnumerateArray().Select(v => v.GetProperty("name").GetString());
        Assert.Equal(["taken"], names);
        Assert.Equal(1 * MiB, (await ShowAsync("taken")).GetProperty("size").GetInt64());
    }

    [ToolFact("qemu-img")]
    public async Task A_qcow2_that_qemu_img_cannot_read_is_refused_and_creates_nothing()
    {
        var fake = Dir.File("broken.qcow2");
        await File.WriteAllBytesAsync(fake, [(byte)'Q', (byte)'F', (byte)'I', 0xfb, 0, 0, 0, 9, .. new byte[1000]]);

        var result = await Roam("volume", "import", "vol1", fake);

        result.ShouldFail(1, $"qemu-img cannot read {fake} as qcow2");
        Assert.Equal(0, (await Roam("volume", "list", "--json")).ShouldSucceed().Json.GetArrayLength());
    }

    [Fact]
    public async Task Import_at_a_terminal_shows_progress_and_ends_with_a_summary()
    {
        var source = MakeSparseImage();
        var console = new TestConsole().Width(160).Interactive();

        var result = await RoamRunner.RunAsync(console, ["volume", "import", "vol1", source, "--control", Roamd.ControlSocket]);

        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Contains("import vol1", result.Stdout); // the progress task
        Assert.Contains("100%", result.Stdout);
        Assert.Matches(@"imported 64 MiB \(1\.\d MiB allocated\) into vol1 in \d+\.\d s, [\d.]+ [KMGT]?i?B/s", result.Stdout);
    }

    [Fact]
    public async Task Import_without_a_terminal_prints_only_the_summary()
    {
        var source = MakeSparseImage();

        var result = (await Roam("volume", "import", "vol1", source)).ShouldSucceed();

        Assert.DoesNotContain("%", result.Stdout);
        Assert.Matches(@"^imported 64 MiB \(1\.\d MiB allocated\) into vol1 in \d+\.\d s, [\d.]+ [KMGT]?i?B/s\n$", result.Stdout);
    }

    [Fact]
    public async Task Jobs_are_listed_with_their_outcome()
    {
        (await Roam("volume", "import", "vol1", MakeSparseImage())).ShouldSucceed();

        var jobs = (await Roam("job", "list", "--json")).ShouldSucceed().Json;

        var job = Assert.Single(jobs.EnumerateArray());
        Assert.Equal("import", job.GetProperty("kind").GetString());
        Assert.Equal("succeeded", job.GetProperty("state").GetString());
        Assert.Equal(ImageSize, job.GetProperty("bytesDone").GetInt64());
        Assert.Equal(ImageSize, job.GetProperty("bytesTotal").GetInt64());
    }
}
