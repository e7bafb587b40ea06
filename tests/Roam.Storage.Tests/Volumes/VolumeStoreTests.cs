using Roam.Storage.Volumes;

namespace Roam.Storage.Tests.Volumes;

public sealed class VolumeStoreTests : StoreTestBase
{
    [Fact]
    public void Create_makes_a_sparse_file_of_the_size_and_lists_it()
    {
        using var store = OpenStore();

        var info = store.Create("disk", 64 * MiB);

        Assert.Equal(("disk", 64 * MiB), (info.Name, info.Size));
        Assert.Equal([info], store.List());
        Assert.Equal(64 * MiB, new FileInfo(store.DataPath("disk")).Length);
        var status = store.Status("disk");
        Assert.Equal((0L, 0), (status.AllocatedBytes, status.OpenCount));
    }

    [Fact]
    public void List_is_in_name_order_and_survives_a_restart()
    {
        using (var first = OpenStore())
        {
            first.Create("b", MiB);
            first.Create("a", 2 * MiB);
            first.Create("c", 512);
        }

        using var store = OpenStore();

        Assert.Equal([("a", 2 * MiB), ("b", MiB), ("c", 512L)], store.List().Select(v => (v.Name, v.Size)));
    }

    [Theory]
    [InlineData(0L)]
    [InlineData(-512L)]
    [InlineData(1000L)]
    public void Sizes_that_are_not_positive_multiples_of_512_are_refused(long size)
    {
        using var store = OpenStore();

        var ex = Assert.Throws<VolumeException>(() => store.Create("disk", size));

        Assert.Equal(VolumeError.InvalidSize, ex.Error);
        Assert.Empty(store.List());
    }

    [Fact]
    public void Invalid_names_and_duplicates_are_refused()
    {
        using var store = OpenStore();
        store.Create("disk", MiB);

        Assert.Equal(VolumeError.InvalidName, Assert.Throws<VolumeException>(() => store.Create("../disk", MiB)).Error);
        Assert.Equal(VolumeError.AlreadyExists, Assert.Throws<VolumeException>(() => store.Create("disk", 2 * MiB)).Error);
        Assert.Equal(MiB, store.Get("disk").Size);
    }

    [Fact]
    public void Unknown_volumes_are_NotFound()
    {
        using var store = OpenStore();

        Assert.Equal(VolumeError.NotFound, Assert.Throws<VolumeException>(() => store.Get("nosuch")).Error);
        Assert.Equal(VolumeError.NotFound, Assert.Throws<VolumeException>(() => store.Open("nosuch")).Error);
        Assert.Equal(VolumeError.NotFound, Assert.Throws<VolumeException>(() => store.Delete("nosuch")).Error);
        Assert.False(store.TryGet("nosuch", out _));
    }

    [Fact]
    public async Task Resize_grows_keeping_the_data_and_new_leases_see_the_new_size()
    {
        using var store = OpenStore();
        store.Create("disk", MiB);
        using var before = store.Open("disk");
        await before.Device.WriteAsync(4096, new byte[] { 1, 2, 3 }, fua: true, CancellationToken.None);

        var grown = store.Resize("disk", 4 * MiB);

        Assert.Equal(4 * MiB, grown.Size);
        Assert.Equal(4 * MiB, new FileInfo(store.DataPath("disk")).Length);
        Assert.Equal(MiB, before.Device.Size); // an open connection keeps the size it negotiated
        using var after = store.Open("disk");
        Assert.Equal(4 * MiB, after.Device.Size);
        var read = new byte[3];
        await after.Device.ReadAsync(4096, read, CancellationToken.None);
        Assert.Equal(new byte[] { 1, 2, 3 }, read);
    }

    [Fact]
    public void Resize_refuses_to_shrink_and_accepts_the_same_size()
    {
        using var store = OpenStore();
        store.Create("disk", 2 * MiB);

        Assert.Equal(VolumeError.Shrink, Assert.Throws<VolumeException>(() => store.Resize("disk", MiB)).Error);
        Assert.Equal(2 * MiB, store.Resize("disk", 2 * MiB).Size);
        Assert.Equal(2 * MiB, new FileInfo(store.DataPath("disk")).Length);
    }

    [Fact]
    public void Delete_is_refused_while_a_lease_is_open_and_works_after()
    {
        using var store = OpenStore();
        store.Create("disk", MiB);
        var lease = store.Open("disk");
        Assert.Equal(1, store.Status("disk").OpenCount);

        var ex = Assert.Throws<VolumeException>(() => store.Delete("disk"));

        Assert.Equal(VolumeError.InUse, ex.Error);
        Assert.True(File.Exists(store.DataPath("disk")));
        lease.Dispose();
        lease.Dispose(); // a second dispose must not release someone else's lease
        store.Delete("disk");
        Assert.Empty(store.List());
        Assert.Empty(Directory.GetFiles(VolumesDir));
    }

    [Fact]
    public async Task Every_lease_of_a_volume_shares_one_device()
    {
        using var store = OpenStore();
        store.Create("disk", MiB);
        using var a = store.Open("disk");
        using var b = store.Open("disk");

        await a.Device.WriteAsync(0, new byte[] { 42 }, fua: false, CancellationToken.None);

        Assert.Same(a.Device, b.Device);
        Assert.Equal(2, store.Status("disk").OpenCount);
        var read = new byte[1];
        await b.Device.ReadAsync(0, read, CancellationToken.None);
        Assert.Equal(42, read[0]);
    }
}
