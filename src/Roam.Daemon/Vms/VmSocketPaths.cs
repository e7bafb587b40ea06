using System.Security.Cryptography;
using System.Text;

namespace Roam.Daemon.Vms;

/// <summary>
/// Where a VM's Unix sockets live (QMP, console, the migration's memory stream): beside its definition in DATA_DIR/vms,
/// not in /tmp, which tmpfiles cleaners empty under long-running VMs; unless that path is longer than a sockaddr_un
/// holds, then a fixed name under /tmp derived from it, so a restarted roamd finds the same socket again.
/// </summary>
internal static class VmSocketPaths
{
    /// <summary>sockaddr_un's sun_path is 108 bytes with its terminating NUL.</summary>
    public const int MaxBytes = 107;

    /// <summary>The socket <paramref name="fileName"/> of a VM whose definitions are in <paramref name="vmsDirectory"/>.</summary>
    public static string For(string vmsDirectory, string fileName)
    {
        var path = Path.Combine(Path.GetFullPath(vmsDirectory), fileName);
        if (Encoding.UTF8.GetByteCount(path) <= MaxBytes) return path;
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(path)))[..24];
        return Path.Combine("/tmp", $"roam-{hash}.sock");
    }

    /// <summary>Removes a socket file a killed process left behind, so that binding it again works.</summary>
    public static void DeleteStale(string path)
    {
        try { File.Delete(path); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { }
    }
}
