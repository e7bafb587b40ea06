using Roam.Storage.Volumes;
using Roam.Testing;

namespace Roam.Storage.Tests.Volumes;

/// <summary>A temporary data dir per test; <see cref="OpenStore"/> starts a store on it (again, to test recovery).</summary>
public abstract class StoreTestBase : IDisposable
{
    protected const long MiB = 1024 * 1024;
    private readonly List<VolumeStore> _stores = [];

    protected string DataDir { get; } = Directory.CreateTempSubdirectory("roam-storage-test-").FullName;

    protected string VolumesDir => Path.Combine(DataDir, "volumes");

    protected TestLog Log { get; } = new();

    protected VolumeStore OpenStore()
    {
        var store = new VolumeStore(DataDir, Log);
        _stores.Add(store);
        return store;
    }

    public void Dispose()
    {
        foreach (var store in _stores) store.Dispose();
        Directory.Delete(DataDir, recursive: true);
    }
}
