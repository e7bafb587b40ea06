namespace Roam.Peers.Tunnel;

/// <summary>
/// Compression of a tunnel's stream (a VM's memory migration), when both roamds agree on "lz4": the chunks of
/// <see cref="TunnelChunks"/> then carry an LZ4 block instead of the raw bytes whenever LZ4 saves at least a
/// sixteenth. A guest's memory halves under LZ4 (QEMU already sends zero pages as flags), and on a slow link every
/// byte saved shortens the copy and the final pass inside the VM's pause.
/// </summary>
public static class TunnelCompression
{
    public const string Lz4 = "lz4";
}
