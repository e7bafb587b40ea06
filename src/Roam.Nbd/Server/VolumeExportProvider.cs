using Roam.Storage.Volumes;

namespace Roam.Nbd.Server;

/// <summary>Every volume of the store is an export of the same name.</summary>
public sealed class VolumeExportProvider(VolumeStore store) : INbdExportProvider
{
    public IReadOnlyList<string> ListExports() => [.. store.List().Select(v => v.Name)];

    public NbdExport? Open(string name)
    {
        if (!VolumeName.IsValid(name) || !store.TryGet(name, out _)) return null;
        try
        {
            var lease = store.Open(name);
            return new NbdExport(name, lease.Device, readOnly: false, lease);
        }
        catch (VolumeException ex) when (ex.Error == VolumeError.NotFound)
        {
            return null; // deleted between the look-up and the open
        }
    }
}
