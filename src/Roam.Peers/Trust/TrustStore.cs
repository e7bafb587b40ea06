using System.Collections.Frozen;
using System.Text.Json;
using Roam.Peers.Identity;
using Roam.Storage.Volumes;

namespace Roam.Peers.Trust;

/// <summary>
/// The peers this host trusts, like SSH's known_hosts: DATA_DIR/peers.json, replaced crash-safely on
/// every change. Reads are lock-free over an immutable snapshot (the TLS handshake of every incoming
/// connection looks here); changes are serialised and reach the file before they become visible,
/// so a peer is never trusted in memory while the file says otherwise after a crash.
/// </summary>
public sealed class TrustStore
{
    public const string FileName = "peers.json";
    public const int MaxNameLength = 64;
    private const int FormatVersion = 1;

    private readonly Lock _writeLock = new();
    private volatile Snapshot _snapshot;

    private TrustStore(string path, Snapshot snapshot)
    {
        Path = path;
        _snapshot = snapshot;
    }

    public string Path { get; }

    /// <summary>Opens the store of <paramref name="dataDir"/>; no file means no trusted peers yet.</summary>
    public static TrustStore Open(string dataDir)
    {
        var path = System.IO.Path.Combine(dataDir, FileName);
        if (!File.Exists(path)) return new TrustStore(path, Snapshot.Empty);
        PeersFile? file;
        try
        {
            file = JsonSerializer.Deserialize(File.ReadAllBytes(path), TrustJsonContext.Default.PeersFile);
        }
        catch (JsonException ex)
        {
            throw new TrustStoreException(TrustStoreError.Corrupt, $"{path} is not valid JSON: {ex.Message}", ex);
        }
        if (file?.Peers is null || file.Version != FormatVersion)
            throw new TrustStoreException(TrustStoreError.Corrupt, $"{path} is not a version {FormatVersion} peers file");

        var peers = new List<TrustedPeer>();
        foreach (var record in file.Peers)
        {
            try
            {
                var peer = Validate(record.Name, record.Address, record.Fingerprint);
                Snapshot.CheckUnique(peers, peer);
                peers.Add(peer);
            }
            catch (TrustStoreException ex)
            {
                throw new TrustStoreException(TrustStoreError.Corrupt, $"{path}: {ex.Message}", ex);
            }
        }
        return new TrustStore(path, new Snapshot(peers));
    }

    /// <summary>Every trusted peer, by name.</summary>
    public IReadOnlyList<TrustedPeer> List() => _snapshot.Peers;

    public TrustedPeer? Find(string name) => _snapshot.ByName.GetValueOrDefault(name);

    public TrustedPeer? FindByFingerprint(CertificateFingerprint fingerprint) => _snapshot.ByFingerprint.GetValueOrDefault(fingerprint);

    /// <summary>
    /// Trusts a peer. Refuses (with <see cref="TrustStoreException"/>) an invalid name, address or
    /// fingerprint, a name already in use (case-insensitively) and a fingerprint already trusted
    /// under another name, since a certificate must map to one peer.
    /// </summary>
    public TrustedPeer Add(string name, string address, string fingerprint)
    {
        var peer = Validate(name, address, fingerprint);
        lock (_writeLock)
        {
            var current = _snapshot;
            Snapshot.CheckUnique(current.Peers, peer);
            Commit(new Snapshot([.. current.Peers, peer]));
        }
        return peer;
    }

    /// <summary>Stops trusting a peer; false when no peer has that name. Open connections are not closed.</summary>
    public bool Remove(string name)
    {
        lock (_writeLock)
        {
            var current = _snapshot;
            if (!current.ByName.TryGetValue(name, out var peer)) return false;
            Commit(new Snapshot([.. current.Peers.Where(p => !ReferenceEquals(p, peer))]));
            return true;
        }
    }

    private void Commit(Snapshot next)
    {
        var file = new PeersFile(FormatVersion, [.. next.Peers.Select(p => new PeerRecord(p.Name, p.Address.ToString(), p.Fingerprint.ToString()))]);
        DurableFile.Write(Path, JsonSerializer.SerializeToUtf8Bytes(file, TrustJsonContext.Default.PeersFile));
        _snapshot = next;
    }

    private static TrustedPeer Validate(string? name, string? address, string? fingerprint)
    {
        if (!IsValidName(name))
            throw new TrustStoreException(TrustStoreError.InvalidName,
                $"'{name}' is not a valid peer name: use 1 to {MaxNameLength} letters, digits, '.', '-' or '_', starting with a letter or digit");
        if (!PeerAddress.TryParse(address, out var parsed, out var error))
            throw new TrustStoreException(TrustStoreError.InvalidAddress, $"peer {name}: {error}");
        if (!CertificateFingerprint.TryParse(fingerprint, out var fp))
            throw new TrustStoreException(TrustStoreError.InvalidFingerprint,
                $"peer {name}: '{fingerprint}' is not a certificate fingerprint; expected {CertificateFingerprint.Prefix} and 43 base64 characters (as 'roam identity' prints it) or 64 hex digits");
        return new TrustedPeer(name, parsed, fp);
    }

    private static bool IsValidName([System.Diagnostics.CodeAnalysis.NotNullWhen(true)] string? name) =>
        !string.IsNullOrEmpty(name) && name.Length <= MaxNameLength && char.IsAsciiLetterOrDigit(name[0])
        && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_');

    private sealed class Snapshot
    {
        public static readonly Snapshot Empty = new([]);

        public Snapshot(IEnumerable<TrustedPeer> peers)
        {
            Peers = [.. peers.OrderBy(p => p.Name, StringComparer.OrdinalIgnoreCase)];
            ByName = Peers.ToFrozenDictionary(p => p.Name, StringComparer.OrdinalIgnoreCase);
            ByFingerprint = Peers.ToFrozenDictionary(p => p.Fingerprint);
        }

        public TrustedPeer[] Peers { get; }
        public FrozenDictionary<string, TrustedPeer> ByName { get; }
        public FrozenDictionary<CertificateFingerprint, TrustedPeer> ByFingerprint { get; }

        public static void CheckUnique(IEnumerable<TrustedPeer> existing, TrustedPeer peer)
        {
            foreach (var other in existing)
            {
                if (string.Equals(other.Name, peer.Name, StringComparison.OrdinalIgnoreCase))
                    throw new TrustStoreException(TrustStoreError.DuplicateName, $"a peer named {other.Name} is already trusted; remove it first to change it");
                if (other.Fingerprint == peer.Fingerprint)
                    throw new TrustStoreException(TrustStoreError.DuplicateFingerprint, $"fingerprint {peer.Fingerprint} is already trusted as peer {other.Name}");
            }
        }
    }
}
