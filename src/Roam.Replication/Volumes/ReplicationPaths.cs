namespace Roam.Replication.Volumes;

/// <summary>
/// Where replication keeps a volume's state, in DATA_DIR/replication: NAME.json (role, generations, replicas),
/// NAME.PEER.bitmap (what a replica lacks), NAME.al (the activity log), and on a split brain's loser
/// NAME.KEEPER.diverged (the regions it wrote apart, until the keeper's copy completes).
/// </summary>
internal sealed class ReplicationPaths
{
    public ReplicationPaths(string dataDir)
    {
        Directory = Path.Combine(dataDir, "replication");
        System.IO.Directory.CreateDirectory(Directory);
    }

    public string Directory { get; }

    public string State(string volume) => Path.Combine(Directory, volume + ".json");

    public string Bitmap(string volume, string peer) => Path.Combine(Directory, $"{volume}.{peer}.bitmap");

    public string ActivityLog(string volume) => Path.Combine(Directory, volume + ".al");

    /// <summary>
    /// A split brain's loser: the regions it wrote since it parted from <paramref name="keeper"/>, kept from its
    /// resolve until the keeper's copy over it completes, and handed to the keeper in AttachAck.
    /// </summary>
    public string Diverged(string volume, string keeper) => Path.Combine(Directory, $"{volume}.{keeper}.diverged");

    /// <summary>Every bitmap of the volume, one per replica (or parted link).</summary>
    public IEnumerable<string> Bitmaps(string volume) => System.IO.Directory.EnumerateFiles(Directory, volume + ".*.bitmap");

    public static void TryDelete(string path)
    {
        try { File.Delete(path); }
        catch (IOException) { }
    }
}
