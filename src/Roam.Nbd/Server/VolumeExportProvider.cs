using Roam.Storage.Devices;
using Roam.Storage.Volumes;

namespace Roam.Nbd.Server;

/// <summary>
/// Every volume of the store is an export of the same name. <paramref name="compose"/> puts the layers an export
/// writes through over the volume's file (roamd: replication's, see Roam.Daemon's Exports/); without it, the file itself.
/// </summary>
public sealed class VolumeExportProvider(VolumeStore store, Func<string, IBlockDevice, (IBlockDevice Device, bool ReadOnly)>? compose = null)
    : INbdExportProvider
{
    public IReadOnlyList<string> ListExports() => [.. store.List().Select(v => v.Name)];

    public NbdExport? Open(string name)
    {
        if (!VolumeName.IsValid(name) || !store.TryGet(name, out _)) return null;
        try
        {
            var lease = store.Open(name);
            try
            {
                var (device, readOnly) = compose?.Invoke(name, lease.Device) ?? (lease.Device, false);
                return new NbdExport(name, device, readOnly, lease);
            }
            catch
            {
                lease.Dispose();
                throw;
            }
        }
        catch (VolumeException ex) when (ex.Error == VolumeError.NotFound)
        {
            return null; // deleted between the look-up and the open
        }
    }
}
