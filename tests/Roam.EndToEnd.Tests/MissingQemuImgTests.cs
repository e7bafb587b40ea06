using Roam.EndToEnd.Tests.Infrastructure;

namespace Roam.EndToEnd.Tests;

/// <summary>roamd on a host without qemu-img: raw still works, qcow2 fails with an install hint.</summary>
public sealed class MissingQemuImgTests : RoamdTest
{
    private readonly Dictionary<string, string> _environment;

    public MissingQemuImgTests() => _environment = new() { ["PATH"] = Dir.Sub("empty-bin") };

    protected override IReadOnlyDictionary<string, string>? RoamdEnvironment => _environment;

    [Fact]
    public async Task Qcow2_import_and_export_say_qemu_img_is_missing()
    {
        var qcow2 = Dir.File("image.qcow2");
        await File.WriteAllBytesAsync(qcow2, [(byte)'Q', (byte)'F', (byte)'I', 0xfb, 0, 0, 0, 3, .. new byte[4096]]);
        (await Roam("volume", "create", "vol1", "--size", "1M")).ShouldSucceed();

        var import = await Roam("volume", "import", "vol2", qcow2);
        var export = await Roam("volume", "export", "vol1", Dir.File("out.qcow2"));
        var rawExport = await Roam("volume", "export", "vol1", Dir.File("out.raw"));

        import.ShouldFail(1, "qemu-img is not installed, and qcow2 images need it (Debian/Ubuntu: apt-get install qemu-utils)");
        export.ShouldFail(1, "qemu-img is not installed");
        rawExport.ShouldSucceed();
        Assert.False(File.Exists(Dir.File("out.qcow2")));
        Assert.Empty(Directory.GetFiles(Dir.Path, "*.tmp"));
        var names = (await Roam("volume", "list", "--json")).ShouldSucceed().Json.EnumerateArray().Select(v => v.GetProperty("name").GetString());
        Assert.Equal(["vol1"], names);
    }
}
