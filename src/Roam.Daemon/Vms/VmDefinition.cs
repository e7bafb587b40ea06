using System.Text.Json;
using System.Text.Json.Serialization;

namespace Roam.Daemon.Vms;

/// <summary>A VM as kept in DATA_DIR/vms/NAME.json.</summary>
internal sealed record VmDefinition(string Name, string Volume, int MemoryMiB, int Cpus, string? Kernel, string? Initrd, string? Append,
    DateTimeOffset Created);

/// <summary>Peer tunnel messages between roamds about VMs (see Roam.Replication.Tunnel).</summary>
/// <param name="StreamCompression">What the sender can carry the memory stream in ("lz4", see TunnelCompression), or null: raw.</param>
/// <param name="BootFiles">The VM's kernel and initrd as the source has them (a destination lacking one is sent it, see BootFiles);
/// null from an older roamd, whose files must then be at the same paths on the destination.</param>
/// <param name="StreamChecksum">vm-incoming: the checksum the sender's chunks carry (<see cref="Roam.Peers.Tunnel.TunnelChunks.Checksum"/>);
/// a destination refuses a stream without it (null: an older roamd, whose stream it could not verify).</param>
internal sealed record VmTunnelRequest(string Op, VmDefinition Vm, long VolumeSize, string? Accelerator, string? StreamCompression = null,
    IReadOnlyList<BootFileOffer>? BootFiles = null, string? StreamChecksum = null);

/// <param name="StreamCompression">What the stream will be carried in, as the receiver agreed (null: raw; an older roamd never sets it).</param>
/// <param name="NeedBootFiles">The SHA-256 of the offered boot files the destination lacks (vm-prepare, vm-boot-file).</param>
/// <param name="StreamChecksum">vm-incoming: the checksum the receiver verifies each chunk with, as it agreed; a source refuses to
/// send the memory stream without it.</param>
internal sealed record VmTunnelReply(bool Ok, string? Error, string? StreamCompression = null, IReadOnlyList<string>? NeedBootFiles = null,
    string? StreamChecksum = null);

internal static class VmTunnelOps
{
    /// <summary>Can this host take the VM? (trust and reachability are proven by the tunnel itself; disk space, memory, files, name)</summary>
    public const string Prepare = "vm-prepare";
    /// <summary>Start the VM with -incoming and relay the memory stream that follows into it.</summary>
    public const string Incoming = "vm-incoming";
    /// <summary>Does the VM run here? Ok once it does; Error "failed: ..." if its arrival failed, else "pending".</summary>
    public const string Status = "vm-status";
    /// <summary>
    /// After a failed arrival that came after the disk hand-over: give the volume back to the asking source (a volume
    /// migration the other way, a delta of nothing), so the source, which kept the VM paused, can resume it. Ok once the
    /// asker is the volume's primary again.
    /// </summary>
    public const string Return = "vm-return";
    /// <summary>
    /// Here is a boot file (the request's single BootFiles entry): Ok with NeedBootFiles empty when this host has it
    /// already; else Ok with its hash, then exactly its bytes follow on the tunnel, and a second answer says whether
    /// they arrived whole (size and SHA-256).
    /// </summary>
    public const string BootFile = "vm-boot-file";
}

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(VmDefinition))]
[JsonSerializable(typeof(VmTunnelRequest))]
[JsonSerializable(typeof(VmTunnelReply))]
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
