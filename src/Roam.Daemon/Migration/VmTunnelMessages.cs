using System.Text.Json;
using System.Text.Json.Serialization;
using Roam.Daemon.Vms;

namespace Roam.Daemon.Migration;

// Peer tunnel messages between roamds about VMs (see Roam.Peers.Tunnel): one JSON request opens a tunnel, one JSON
// reply answers it. Both ends run the same build: the shape may change from one version to the next.
//
//   source                                   destination
//   Prepare  {vm, size, bootFiles}      ->   Ok | Refused (why)            + needBootFiles
//   BootFile {vm, bootFiles: [one]}     ->   Ok (+ its hash: send it) ... bytes ... Ok | Failed
//   Incoming {vm, compression, checksum}->   Ok (+ agreed compression, checksum) | Refused;  memory stream follows
//   Status   {vm}                       ->   Ok (runs here) | Pending (loading) | Failed (did not arrive: why)
//   Return   {vm}                       ->   Ok (the asker is primary again) | Refused (why)

/// <summary>What a VM tunnel request asks (see <see cref="VmTunnelRequest"/>).</summary>
[JsonConverter(typeof(StrictEnumConverter<VmTunnelOp>))]
internal enum VmTunnelOp
{
    /// <summary>Can this host take the VM? (trust and reachability are proven by the tunnel itself; disk space, memory, files, name)</summary>
    Prepare,
    /// <summary>Start the VM with -incoming and relay the memory stream that follows into it.</summary>
    Incoming,
    /// <summary>Does the VM run here? Ok once it does, Pending while it loads, Failed if its arrival failed.</summary>
    Status,
    /// <summary>
    /// After a failed arrival that came after the disk hand-over: give the volume back to the asking source (a volume
    /// migration the other way, a delta of nothing), so the source, which kept the VM paused, can resume it. Ok once the
    /// asker is the volume's primary again.
    /// </summary>
    Return,
    /// <summary>
    /// Here is a boot file (the request's single BootFiles entry): Ok with NeedBootFiles empty when this host has it
    /// already; else Ok with its hash, then exactly its bytes follow on the tunnel, and a second answer says whether
    /// they arrived whole (size and SHA-256).
    /// </summary>
    BootFile,
}

/// <summary>A VM tunnel reply's verdict: no string prefixes, a reason the source branches on.</summary>
[JsonConverter(typeof(StrictEnumConverter<VmTunnelStatus>))]
internal enum VmTunnelStatus
{
    /// <summary>Done as asked (for Status: the VM runs here).</summary>
    Ok,
    /// <summary>Status only: the VM is still arriving (its QEMU loads the stream, or waits to be resumed).</summary>
    Pending,
    /// <summary>Status only: the VM did not arrive and never will; the reply's Error says why.</summary>
    Failed,
    /// <summary>The request is refused (name, space, memory, files, state); the reply's Error says why.</summary>
    Refused,
}

/// <param name="StreamCompression">What the sender can carry the memory stream in ("lz4", see TunnelCompression), or null: raw.</param>
/// <param name="BootFiles">The VM's kernel and initrd as the source has them (a destination lacking one is sent it, see BootFiles).</param>
/// <param name="StreamChecksum">Incoming: the checksum the sender's chunks carry (<see cref="Roam.Peers.Tunnel.TunnelChunks.Checksum"/>);
/// a destination refuses a stream without it.</param>
internal sealed record VmTunnelRequest([property: JsonRequired] VmTunnelOp Op, VmDefinition Vm, long VolumeSize, string? Accelerator, string? StreamCompression = null,
    IReadOnlyList<BootFileOffer>? BootFiles = null, string? StreamChecksum = null, string? NetworkThere = null);

/// <param name="Error">Why, unless <see cref="Status"/> is <see cref="VmTunnelStatus.Ok"/> or <see cref="VmTunnelStatus.Pending"/>.</param>
/// <param name="StreamCompression">What the stream will be carried in, as the receiver agreed (null: raw).</param>
/// <param name="NeedBootFiles">The SHA-256 of the offered boot files the destination lacks (Prepare, BootFile).</param>
/// <param name="StreamChecksum">Incoming: the checksum the receiver verifies each chunk with, as it agreed; a source refuses to
/// send the memory stream without it.</param>
internal sealed record VmTunnelReply([property: JsonRequired] VmTunnelStatus Status, string? Error, string? StreamCompression = null, IReadOnlyList<string>? NeedBootFiles = null,
    string? StreamChecksum = null)
{
    [JsonIgnore]
    public bool Ok => Status == VmTunnelStatus.Ok;
}

/// <summary>The tunnel messages' JSON: enums by name only (a number or an unknown name is refused, not taken for a value).</summary>
internal static class VmTunnelJson
{
    public static string Serialize(VmTunnelRequest request) => JsonSerializer.Serialize(request, VmTunnelJsonContext.Default.VmTunnelRequest);

    public static string Serialize(VmTunnelReply reply) => JsonSerializer.Serialize(reply, VmTunnelJsonContext.Default.VmTunnelReply);

    /// <summary>The request, or null if it is not one this build understands.</summary>
    public static VmTunnelRequest? TryParseRequest(string json)
    {
        try { return JsonSerializer.Deserialize(json, VmTunnelJsonContext.Default.VmTunnelRequest) is { Vm: not null } r && Enum.IsDefined(r.Op) ? r : null; }
        catch (JsonException) { return null; }
    }

    /// <summary>The reply; <see cref="JsonException"/> for anything else, a status this build does not know included.</summary>
    public static VmTunnelReply ParseReply(string json)
    {
        var reply = JsonSerializer.Deserialize(json, VmTunnelJsonContext.Default.VmTunnelReply) ?? throw new JsonException("a null reply");
        return Enum.IsDefined(reply.Status) ? reply : throw new JsonException($"unknown status {(int)reply.Status}");
    }
}

/// <summary>An enum as its name, strictly: integers are refused (JsonStringEnumConverter allows them by default).</summary>
internal sealed class StrictEnumConverter<T>() : JsonStringEnumConverter<T>(namingPolicy: null, allowIntegerValues: false) where T : struct, Enum;

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(VmTunnelRequest))]
[JsonSerializable(typeof(VmTunnelReply))]
internal sealed partial class VmTunnelJsonContext : JsonSerializerContext;
