namespace Roam.Storage.Tracking;

/// <summary>
/// A volume's data-generation identifiers (DRBD's data-generation UUIDs): <see cref="Current"/> names the
/// data as it is now; <see cref="History"/> the generations it descends from, newest first. A primary
/// starts a new generation whenever its data begins to diverge from a peer it can no longer reach
/// (first write while a replica is away, a forced promote, a hand-over), so two sides that meet again
/// can tell which one is newer, or that both moved on apart: a split brain.
/// </summary>
public sealed record DataGenerations(Guid Current, IReadOnlyList<Guid> History)
{
    /// <summary>How many ancestors are remembered; older ones can only ever mean "full sync".</summary>
    public const int HistoryLength = 8;

    public static DataGenerations New() => new(Guid.NewGuid(), []);

    /// <summary>Starts a new generation that descends from the current one.</summary>
    public DataGenerations Next() => new(Guid.NewGuid(), [Current, .. History.Take(HistoryLength - 1)]);

    public bool DescendsFrom(Guid generation) => History.Contains(generation);
}

/// <summary>What two sides of a volume do when they meet.</summary>
public enum SyncVerdict
{
    /// <summary>Same generation: only regions marked in the bitmaps differ, sent from the primary.</summary>
    Same,

    /// <summary>This side descends from the other's generation: this side is the sync source.</summary>
    LocalNewer,

    /// <summary>The other side descends from this one: this side becomes the sync target.</summary>
    PeerNewer,

    /// <summary>Both wrote apart from a common ancestor (or share none): nothing syncs until a person decides.</summary>
    SplitBrain,
}

public static class SyncDecision
{
    public static SyncVerdict Decide(DataGenerations local, DataGenerations peer)
    {
        if (local.Current == peer.Current) return SyncVerdict.Same;
        if (local.DescendsFrom(peer.Current)) return SyncVerdict.LocalNewer;
        if (peer.DescendsFrom(local.Current)) return SyncVerdict.PeerNewer;
        return SyncVerdict.SplitBrain;
    }
}
