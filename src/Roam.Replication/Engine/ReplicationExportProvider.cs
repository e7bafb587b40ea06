using Roam.Nbd.Server;
using Roam.Storage.Volumes;

namespace Roam.Replication.Engine;

/// <summary>
/// Every volume is an export: a replicated primary through its replicating device, a replica
/// read-only, any other volume as the plain store device.
/// </summary>
internal sealed class ReplicationExportProvider(ReplicationService service) : INbdExportProvider
{
    public IReadOnlyList<string> ListExports() => [.. service.Store.List().Select(v => v.Name)];

    public NbdExport? Open(string name)
    {
        if (!VolumeName.IsValid(name) || !service.Store.TryGet(name, out _)) return null;
        try
        {
            var lease = service.Store.Open(name);
            if (service.OpenVmDiskExport(name, lease) is { } vmDisk) return vmDisk; // a VM's disk: the write path follows the volume's role
            var (role, primary) = service.Lookup(name);
            if (role == VolumeRole.Replica) return new NbdExport(name, lease.Device, readOnly: true, lease);
            // A primary's connection may outlive its role's path (a plain volume gains a replica, a hand-over
            // moves it away), so each change looks the path up (Volumes.RoleRouter).
            return new NbdExport(name, new Volumes.RoleRouter(service.Volumes.Get(name), lease.Device),
                readOnly: primary?.PendingHandOver is not null, lease);
        }
        catch (VolumeException ex) when (ex.Error == VolumeError.NotFound)
        {
            return null;
        }
    }
}
