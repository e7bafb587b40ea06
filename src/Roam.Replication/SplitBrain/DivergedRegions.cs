using Roam.Peers.Protocol;
using Roam.Replication.Engine;
using Roam.Replication.Protocol;
using Roam.Replication.Volumes;
using Roam.Storage.Tracking;

namespace Roam.Replication.SplitBrain;

/// <summary>
/// A split brain's loser keeps the regions it wrote apart in NAME.KEEPER.diverged (see <see cref="ReplicationPaths.Diverged"/>),
/// one per keeper, until a complete copy from the keeper overwrote them.
/// </summary>
internal sealed class DivergedRegions(ReplicationService service)
{
    public void DeleteFiles(string volume, string? except = null)
    {
        foreach (var path in Files(volume))
            if (except is null || path != except) ReplicationPaths.TryDelete(path);
    }

    /// <summary>This volume's diverged files, one per keeper (a trusted peer: names may hold dots, so no wildcard).</summary>
    private IEnumerable<string> Files(string volume) =>
        service.Trust.List().Select(p => service.Paths.Diverged(volume, p.Name)).Where(File.Exists);

    /// <summary>
    /// The regions this host wrote apart in split brains it lost and whose keeper has not overwritten them yet, from
    /// any keeper (they are relative to the split, so they hold for whichever descendant primary attaches: the keeper
    /// may have migrated the volume on meanwhile), or null when there are none.
    /// </summary>
    public RegionBitmap? Load(string volume)
    {
        RegionBitmap? union = null;
        foreach (var path in Files(volume))
        {
            // A damaged file loads as all dirty: never less than what was written here.
            var bitmap = RegionBitmap.LoadOrAllDirty(path, service.Store.Get(volume).Size, service.Options.RegionSize);
            if (union is null) union = bitmap;
            else foreach (var (offset, length) in bitmap.DirtyRanges(int.MaxValue)) union.MarkDirty(offset, length);
        }
        return union;
    }

    /// <summary>
    /// What a split brain's loser tells its keeper on attach: the regions it wrote apart, until the keeper's copy
    /// completes (the replica has no generation until then; a reconnect in the middle sends them again).
    /// </summary>
    public IReadOnlyList<DivergedRange>? ForAttach(string volume, DataGenerations generations, int protocolVersion)
    {
        if (generations.Current != Guid.Empty || protocolVersion < PeerProtocol.DivergedRegionsVersion) return null;
        if (Load(volume) is not { } bitmap) return null;
        return [.. bitmap.DirtyRanges(PeerProtocol.MaxDivergedRanges).Select(r => new DivergedRange((ulong)r.Offset, (ulong)r.Length))];
    }
}
