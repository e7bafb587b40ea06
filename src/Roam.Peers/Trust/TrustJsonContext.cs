using System.Text.Json.Serialization;

namespace Roam.Peers.Trust;

/// <summary>The peers.json format: a version, then one record per trusted peer.</summary>
internal sealed record PeersFile(int Version, List<PeerRecord> Peers);

internal sealed record PeerRecord(string Name, string Address, string Fingerprint);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = true)]
[JsonSerializable(typeof(PeersFile))]
internal sealed partial class TrustJsonContext : JsonSerializerContext;
