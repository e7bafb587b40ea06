using Roam.Nbd.Server;
using Roam.Replication.Engine;
using Roam.Storage.Volumes;

namespace Roam.Daemon.Exports;

/// <summary>
/// roamd's NBD exports: every volume of the store, each over replication's layers as its role requires (the role
/// router, then a replicated primary's fence, activity log and mirror; a replica read-only). The one place where the
/// NBD server and replication meet: neither project knows the other.
/// </summary>
internal static class VolumeExports
{
    public static INbdExportProvider For(VolumeStore store, ReplicationService replication) =>
        new VolumeExportProvider(store, replication.ComposeExport);
}
