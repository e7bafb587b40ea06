using Roam.Control;
using Roam.Replication.Engine;

namespace Roam.Daemon.Migration;

/// <summary>The API's view of the replication engine's migration state (volume migrations, and a VM migration's disk).</summary>
internal static class MigrationViews
{
    public static MigrationView View(MigrationStatus s) => new(s.Volume, s.Peer, s.Phase.ToString(), s.BytesTotal, s.BytesDone, s.BytesLeft, s.BytesOnWire,
        Math.Round(s.BytesPerSecond, 1), s.Eta is { } eta ? Math.Round(eta.TotalSeconds, 1) : null, s.Error);

    public static HandOverView View(HandOverResult r) => new(r.Volume, r.NewPrimary, Math.Round(r.WritePause.TotalMilliseconds, 3),
        r.Generations.Current, r.KeptReplica, r.VolumeDeleted);
}
