using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Roam.Storage.Devices;

namespace Roam.Storage.Volumes;

/// <summary>
/// The host's volumes: DIR/volumes/NAME.raw (sparse data) and NAME.json (metadata, replaced
/// atomically). Ordering makes every crash recoverable: create writes the data file before the
/// metadata, delete removes the metadata first, grow extends the data file before the metadata. So
/// on start a data file without metadata is debris, and a data file longer than its metadata says is
/// an unfinished grow; <see cref="Recover"/> cleans both.
/// </summary>
public sealed class VolumeStore : IDisposable
{
    private readonly string _dir;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, VolumeInfo> _volumes = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, OpenVolume> _open = new(StringComparer.Ordinal);

    public VolumeStore(string dataDir, ILogger logger)
    {
        _dir = Path.Combine(dataDir, "volumes");
        _logger = logger;
        Directory.CreateDirectory(_dir);
        Recover();
    }

    public IReadOnlyList<VolumeInfo> List()
    {
        lock (_gate) return [.. _volumes.Values.OrderBy(v => v.Name, StringComparer.Ordinal)];
    }

    public VolumeInfo Get(string name)
    {
        lock (_gate)
            return _volumes.TryGetValue(name, out var v) ? v : throw NotFound(name);
    }

    public bool TryGet(string name, out VolumeInfo? info)
    {
        lock (_gate) return _volumes.TryGetValue(name, out info);
    }

    public VolumeStatus Status(string name)
    {
        var info = Get(name);
        return new VolumeStatus(info.Name, info.Size, info.Id, info.Created, AllocatedBytes(DataPath(name)),
            _open.TryGetValue(name, out var o) ? o.Count : 0);
    }

    public string DataPath(string name) => Path.Combine(_dir, name + ".raw");

    private string MetaPath(string name) => Path.Combine(_dir, name + ".json");

    public VolumeInfo Create(string name, long size)
    {
        VolumeName.Validate(name);
        ValidateSize(size);
        lock (_gate)
        {
            if (_volumes.ContainsKey(name))
                throw new VolumeException(VolumeError.AlreadyExists, $"volume '{name}' already exists");
            var data = DataPath(name);
            using (var handle = File.OpenHandle(data, FileMode.Create, FileAccess.ReadWrite, FileShare.None))
            {
                RandomAccess.SetLength(handle, size);
                NativeFile.FullSync(handle);
            }
            var info = new VolumeInfo(name, size, Guid.NewGuid(), DateTimeOffset.UtcNow);
            WriteMeta(info);
            _volumes[name] = info;
            Log.VolumeCreated(_logger, name, size);
            return info;
        }
    }

    /// <summary>Grows a volume. Connections opened earlier keep the old size until they reconnect.</summary>
    public VolumeInfo Resize(string name, long newSize)
    {
        ValidateSize(newSize);
        lock (_gate)
        {
            var info = Get(name);
            if (newSize < info.Size)
                throw new VolumeException(VolumeError.Shrink,
                    $"volume '{name}' is {ByteSize.Format(info.Size)}; shrinking to {ByteSize.Format(newSize)} would destroy data and is not supported");
            if (newSize == info.Size) return info;
            using (var handle = File.OpenHandle(DataPath(name), FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite))
            {
                RandomAccess.SetLength(handle, newSize);
                NativeFile.FullSync(handle);
            }
            var grown = info with { Size = newSize };
            WriteMeta(grown);
            _volumes[name] = grown;
            Log.VolumeResized(_logger, name, info.Size, newSize);
            return grown;
        }
    }

    public void Delete(string name)
    {
        lock (_gate)
        {
            Get(name);
            if (_open.TryGetValue(name, out var open) && open.Count > 0)
                throw new VolumeException(VolumeError.InUse, $"volume '{name}' is in use ({open.Count} open connection(s)); disconnect its clients first");
            DurableFile.Delete(MetaPath(name));
            _volumes.Remove(name);
            File.Delete(DataPath(name));
            Log.VolumeDeleted(_logger, name);
        }
    }

    /// <summary>
    /// Opens a volume for I/O. All openers share one device, so a flush through any of them covers
    /// the writes of all. Dispose the lease to release it; a volume with leases cannot be deleted.
    /// </summary>
    public VolumeLease Open(string name)
    {
        lock (_gate)
        {
            var info = Get(name);
            var open = _open.GetOrAdd(name, _ => new OpenVolume());
            if (open.Count == 0 || open.Device is null || open.Device.Size != info.Size)
            {
                // Reopen on first use or after a grow; old leases keep the old device alive.
                open.Device = new FileBlockDevice(DataPath(name), info.Size, readOnly: false);
                open.Devices.Add(open.Device);
            }
            open.Count++;
            var device = open.Device;
            return new VolumeLease(info, device, () => Release(open));
        }
    }

    private void Release(OpenVolume open)
    {
        lock (_gate)
        {
            open.Count--;
            if (open.Count == 0)
            {
                foreach (var d in open.Devices) d.Dispose();
                open.Devices.Clear();
                open.Device = null;
            }
        }
    }

    public void Dispose()
    {
        foreach (var o in _open.Values)
        {
            foreach (var d in o.Devices) d.Dispose();
        }
    }

    private void Recover()
    {
        foreach (var temp in Directory.EnumerateFiles(_dir, "*" + DurableFile.TempSuffix))
        {
            Log.RecoveryRemoved(_logger, Path.GetFileName(temp), "unfinished metadata write");
            File.Delete(temp);
        }
        var unreadable = new HashSet<string>(StringComparer.Ordinal);
        foreach (var meta in Directory.EnumerateFiles(_dir, "*.json"))
        {
            // A data file whose metadata exists but cannot be used is kept for a person to look at, never deleted.
            unreadable.Add(Path.GetFileNameWithoutExtension(meta));
            VolumeInfo? info;
            try { info = JsonSerializer.Deserialize(File.ReadAllBytes(meta), StorageJsonContext.Default.VolumeInfo); }
            catch (JsonException ex)
            {
                Log.RecoverySkipped(_logger, Path.GetFileName(meta), $"unreadable metadata: {ex.Message}");
                continue;
            }
            if (info is null || !VolumeName.IsValid(info.Name) || Path.GetFileNameWithoutExtension(meta) != info.Name)
            {
                Log.RecoverySkipped(_logger, Path.GetFileName(meta), "metadata does not match its file name");
                continue;
            }
            var data = DataPath(info.Name);
            if (!File.Exists(data))
            {
                Log.RecoverySkipped(_logger, info.Name, "its data file is missing");
                continue;
            }
            long length = new FileInfo(data).Length;
            if (length != info.Size)
            {
                // A grow that crashed between the data file and the metadata: it was never acknowledged.
                using var handle = File.OpenHandle(data, FileMode.Open, FileAccess.ReadWrite);
                RandomAccess.SetLength(handle, info.Size);
                NativeFile.FullSync(handle);
                Log.RecoveryFixed(_logger, info.Name, length, info.Size);
            }
            _volumes[info.Name] = info;
            unreadable.Remove(info.Name);
        }
        foreach (var data in Directory.EnumerateFiles(_dir, "*.raw"))
        {
            var name = Path.GetFileNameWithoutExtension(data);
            if (!_volumes.ContainsKey(name) && !unreadable.Contains(name))
            {
                Log.RecoveryRemoved(_logger, Path.GetFileName(data), "data file of an unfinished create or delete");
                File.Delete(data);
            }
        }
    }

    private void WriteMeta(VolumeInfo info) =>
        DurableFile.Write(MetaPath(info.Name), JsonSerializer.SerializeToUtf8Bytes(info, StorageJsonContext.Default.VolumeInfo));

    private static void ValidateSize(long size)
    {
        if (size <= 0 || size % 512 != 0)
            throw new VolumeException(VolumeError.InvalidSize, $"invalid size {size}: it must be a positive multiple of 512 bytes");
    }

    private static VolumeException NotFound(string name) => new(VolumeError.NotFound, $"no volume named '{name}'");

    private static long AllocatedBytes(string path)
    {
        try { return Transfer.SparseFiles.AllocatedBytes(path); }
        catch (IOException) { return 0; } // deleted meanwhile, or unreadable: shown as nothing allocated
    }

    private sealed class OpenVolume
    {
        public int Count;
        public FileBlockDevice? Device;
        public readonly HashSet<FileBlockDevice> Devices = [];
    }
}

/// <summary>An open volume; dispose to release it.</summary>
public sealed class VolumeLease(VolumeInfo info, IBlockDevice device, Action release) : IDisposable
{
    private int _released;

    public VolumeInfo Info { get; } = info;

    public IBlockDevice Device { get; } = device;

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _released, 1) == 0) release();
    }
}
