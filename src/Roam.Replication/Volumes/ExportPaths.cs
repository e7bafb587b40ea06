using Roam.Replication.Engine;
using Roam.Storage.Devices;

namespace Roam.Replication.Volumes;

/// <summary>
/// The path (and read-only or not) an export of a volume takes through replication's layers, for whoever serves it (roamd's NBD exports,
/// composed in Roam.Daemon's Exports/): a VM's disk and a primary's export get the <see cref="RoleRouter"/> (a
/// connection may outlive its role's path: a plain volume gains a replica, a hand-over moves it away, so each change
/// looks the path up), a replica the local file read-only.
/// </summary>
internal static class ExportPaths
{
    public static (IBlockDevice Device, bool ReadOnly) Compose(ReplicationService service, string name, IBlockDevice local)
    {
        var entry = service.Volumes.Find(name);
        if (entry is not null)
        {
            lock (entry.Gate)
                if (entry.IsVmDisk) return (new RoleRouter(entry, local), false);
        }
        var (role, primary) = entry?.Lookup() ?? (VolumeRole.Primary, null);
        if (role == VolumeRole.Replica) return (local, true);
        return (new RoleRouter(entry ?? service.Volumes.Get(name), local), primary?.PendingHandOver is not null);
    }
}
