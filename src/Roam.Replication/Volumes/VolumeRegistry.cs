using System.Collections.Concurrent;

namespace Roam.Replication.Volumes;

/// <summary>
/// The replicated volumes of this host, one <see cref="VolumeReplication"/> per name. Finding one takes no lock
/// (the write path looks volumes up on every request); what a volume holds is guarded by its own lock.
/// An entry, once made, stays for the life of the service (a forgotten volume's is emptied, not removed): every
/// caller that found it works on the same object, so two objects can never stand for one volume. An entry is a
/// few fields; names only get one when replication keeps something about them.
/// </summary>
internal sealed class VolumeRegistry
{
    private readonly ConcurrentDictionary<string, VolumeReplication> _volumes = new(StringComparer.Ordinal);

    /// <summary>The volume's entry, or null when replication never kept anything about it.</summary>
    public VolumeReplication? Find(string name) => _volumes.GetValueOrDefault(name);

    /// <summary>The volume's entry, made empty (a plain primary) when it has none yet.</summary>
    public VolumeReplication Get(string name) => _volumes.GetOrAdd(name, static n => new VolumeReplication(n));

    public IEnumerable<VolumeReplication> All => _volumes.Values;
}
