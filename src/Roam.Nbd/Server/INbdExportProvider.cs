using Roam.Storage.Devices;

namespace Roam.Nbd.Server;

/// <summary>Where the NBD server finds its exports; the daemon backs it with the volume store.</summary>
public interface INbdExportProvider
{
    IReadOnlyList<string> ListExports();

    /// <summary>Opens an export for a connection, or returns null when there is no such export.</summary>
    NbdExport? Open(string name);
}

/// <summary>An export held open by one connection; disposing it releases the volume.</summary>
public sealed class NbdExport(string name, IBlockDevice device, bool readOnly, IDisposable? lease = null) : IDisposable
{
    public string Name { get; } = name;

    public IBlockDevice Device { get; } = device;

    public bool ReadOnly { get; } = readOnly || !device.Capabilities.CanWrite;

    public void Dispose() => lease?.Dispose();
}
