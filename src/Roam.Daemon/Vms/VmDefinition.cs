using System.Text.Json;
using System.Text.Json.Serialization;

namespace Roam.Daemon.Vms;

/// <summary>A VM as kept in DATA_DIR/vms/NAME.json; <paramref name="Nic"/> null: no network interface (and definitions
/// from before VMs had one).</summary>
internal sealed record VmDefinition(string Name, string Volume, int MemoryMiB, int Cpus, string? Kernel, string? Initrd, string? Append,
    DateTimeOffset Created, Network.VmNic? Nic = null);

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(VmDefinition))]
internal sealed partial class VmJsonContext : JsonSerializerContext;

/// <summary>VM definitions on disk, written crash-safely (temp file, fsync, rename, fsync of the directory).</summary>
internal sealed class VmDefinitionStore(string dataDir)
{
    public string Directory { get; } = Path.Combine(dataDir, "vms");

    public string PathOf(string name) => Path.Combine(Directory, name + ".json");

    public string SerialPathOf(string name) => Path.Combine(Directory, name + ".serial");

    /// <summary>The console log with a host-time stamp per line (see <see cref="ConsoleRecorder"/>).</summary>
    public string StampedSerialPathOf(string name) => Path.Combine(Directory, name + ".serial.stamped");

    public IEnumerable<VmDefinition> LoadAll()
    {
        System.IO.Directory.CreateDirectory(Directory);
        foreach (var temp in System.IO.Directory.EnumerateFiles(Directory, "*.json.tmp")) File.Delete(temp);
        foreach (var path in System.IO.Directory.EnumerateFiles(Directory, "*.json"))
        {
            VmDefinition? definition;
            try { definition = JsonSerializer.Deserialize(File.ReadAllBytes(path), VmJsonContext.Default.VmDefinition); }
            catch (JsonException) { definition = null; }
            if (definition is not null) yield return definition;
        }
    }

    public void Save(VmDefinition definition)
    {
        System.IO.Directory.CreateDirectory(Directory);
        var path = PathOf(definition.Name);
        var temp = path + ".tmp";
        using (var file = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            JsonSerializer.Serialize(file, definition, VmJsonContext.Default.VmDefinition);
            file.Flush(flushToDisk: true);
        }
        File.Move(temp, path, overwrite: true);
        SyncDirectory();
    }

    public void Delete(string name)
    {
        File.Delete(PathOf(name));
        SyncDirectory();
    }

    private void SyncDirectory()
    {
        try
        {
            using var handle = File.OpenHandle(Directory, FileMode.Open, FileAccess.Read);
            RandomAccess.FlushToDisk(handle);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { }
    }
}
