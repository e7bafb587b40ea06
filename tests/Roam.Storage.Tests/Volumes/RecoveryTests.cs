using Roam.Storage.Volumes;

namespace Roam.Storage.Tests.Volumes;

/// <summary>
/// What a crash can leave behind, per VolumeStore's ordering (data file before metadata on create
/// and grow, metadata first on delete), and what the next start makes of it.
/// </summary>
public sealed class RecoveryTests : StoreTestBase
{
    [Fact]
    public void A_stray_temporary_metadata_file_is_removed()
    {
        using (var first = OpenStore()) first.Create("disk", MiB);
        var temp = Path.Combine(VolumesDir, "disk.json.tmp");
        File.WriteAllText(temp, "{ half a rename");

        using var store = OpenStore();

        Assert.False(File.Exists(temp));
        Assert.Equal(MiB, store.Get("disk").Size);
    }

    [Fact]
    public void A_data_file_without_metadata_is_an_unfinished_create_or_delete_and_is_removed()
    {
        using (var first = OpenStore()) first.Create("disk", MiB);
        var orphan = Path.Combine(VolumesDir, "orphan.raw");
        File.WriteAllBytes(orphan, new byte[4096]);

        using var store = OpenStore();

        Assert.False(File.Exists(orphan));
        Assert.Equal(["disk"], store.List().Select(v => v.Name));
        Assert.True(File.Exists(store.DataPath("disk")));
    }

    [Fact]
    public void A_data_file_whose_metadata_is_damaged_is_kept_and_not_served()
    {
        using (var first = OpenStore()) first.Create("disk", MiB);
        File.WriteAllText(Path.Combine(VolumesDir, "disk.json"), "{ damaged");

        using var store = OpenStore();

        Assert.Empty(store.List());
        Assert.True(File.Exists(Path.Combine(VolumesDir, "disk.raw")), "recovery deleted the data of a volume whose metadata it could not read");
    }

    [Fact]
    public void A_data_file_longer_than_its_metadata_is_an_unacknowledged_grow_and_is_cut_back()
    {
        using (var first = OpenStore()) first.Create("disk", MiB);
        var data = Path.Combine(VolumesDir, "disk.raw");
        using (var file = new FileStream(data, FileMode.Open, FileAccess.Write))
        {
            file.Position = 1000;
            file.Write([7, 7, 7]);
            file.SetLength(3 * MiB);
        }

        using var store = OpenStore();

        Assert.Equal(MiB, store.Get("disk").Size);
        Assert.Equal(MiB, new FileInfo(data).Length);
        Assert.Equal(new byte[] { 7, 7, 7 }, File.ReadAllBytes(data)[1000..1003]);
    }

    [Fact]
    public void Metadata_without_its_data_file_is_not_served()
    {
        using (var first = OpenStore())
        {
            first.Create("disk", MiB);
            first.Create("gone", MiB);
        }
        File.Delete(Path.Combine(VolumesDir, "gone.raw"));

        using var store = OpenStore();

        Assert.Equal(["disk"], store.List().Select(v => v.Name));
        Assert.False(store.TryGet("gone", out _));
    }

    [Fact]
    public void Every_kind_of_debris_at_once_leaves_exactly_the_acknowledged_volumes()
    {
        using (var first = OpenStore())
        {
            first.Create("a", MiB);
            first.Create("b", 2 * MiB);
        }
        File.WriteAllText(Path.Combine(VolumesDir, "a.json.tmp"), "");
        File.WriteAllBytes(Path.Combine(VolumesDir, "c.raw"), new byte[512]);
        using (var b = new FileStream(Path.Combine(VolumesDir, "b.raw"), FileMode.Open)) b.SetLength(5 * MiB);

        using var store = OpenStore();

        Assert.Equal([("a", MiB), ("b", 2 * MiB)], store.List().Select(v => (v.Name, v.Size)));
        Assert.Equal(["a.json", "a.raw", "b.json", "b.raw"], Directory.GetFiles(VolumesDir).Select(Path.GetFileName).Order());
        Assert.Equal(2 * MiB, new FileInfo(Path.Combine(VolumesDir, "b.raw")).Length);
    }
}
