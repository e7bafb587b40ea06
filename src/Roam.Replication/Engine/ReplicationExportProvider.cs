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
            if (primary is not null) return new NbdExport(name, primary.Device, readOnly: primary.PendingHandOver is not null, lease);
            if (role == VolumeRole.Replica) return new NbdExport(name, lease.Device, readOnly: true, lease);
            return new NbdExport(name, new Source.GatedDevice(lease.Device, service.FenceOf(name)), readOnly: false, lease);
        }
        catch (VolumeException ex) when (ex.Error == VolumeError.NotFound)
        {
            return null;
        }
    }
}
