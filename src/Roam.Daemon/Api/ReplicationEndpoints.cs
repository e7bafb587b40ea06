using Roam.Control;
using Roam.Replication.Engine;
using Roam.Peers.Identity;
using Roam.Peers.Trust;
using Roam.Storage.Volumes;

namespace Roam.Daemon.Api;

/// <summary>/v1/peers (the hosts this one trusts) and the replication verbs of /v1/volumes.</summary>
internal static class ReplicationEndpoints
{
    public static void MapReplicationEndpoints(this IEndpointRouteBuilder app)
    {
        var peers = app.MapGroup("/v1/peers");

        peers.MapGet("/", (TrustStore trust, ReplicationService replication, VolumeStore store) =>
        {
            var links = LinkStates(replication, store);
            return (IReadOnlyList<PeerView>)[.. trust.List().Select(p => View(p, links))];
        });

        peers.MapPost("/", (AddPeerRequest request, TrustStore trust, ReplicationService replication, VolumeStore store) =>
        {
            var peer = trust.Add(request.Name ?? "", request.Address ?? "", request.Fingerprint ?? "");
            return TypedResults.Created($"/v1/peers/{peer.Name}", View(peer, LinkStates(replication, store)));
        });

        peers.MapDelete("/{name}", (string name, TrustStore trust) =>
        {
            if (!trust.Remove(name)) throw new ApiException(ApiException.NotFound, $"no trusted peer is named {name} (see: roam host list)");
            return TypedResults.NoContent();
        });

        var volumes = app.MapGroup("/v1/volumes");

        volumes.MapPost("/{name}/replicas", async (string name, AddReplicaRequest request, ReplicationService replication, TrustStore trust,
            VolumeStore store, Hosting.NbdEndpoints nbd, CancellationToken ct) =>
        {
            if (string.IsNullOrWhiteSpace(request.Peer)) throw new ApiException(ApiException.BadRequest, "a peer is required: the name of a trusted host (see: roam host list)");
            var mode = ParseMode(request.Mode);
            store.Get(name); // 404 for a missing volume before anything about peers
            if (trust.Find(request.Peer) is null)
                throw new ApiException(ApiException.NotFound, $"no trusted peer is named {request.Peer}; add it first with: roam host add {request.Peer} ADDR:PORT --fingerprint FP");
            await replication.AddReplicaAsync(name, request.Peer, mode, MigrationEndpoints.ParseBandwidth(request.Bandwidth)?.BytesPerSecond ?? 0, ct).ConfigureAwait(false);
            return TypedResults.Created($"/v1/volumes/{name}", VolumeEndpoints.View(store, nbd, replication, name));
        });

        volumes.MapDelete("/{name}/replicas/{peer}", (string name, string peer, ReplicationService replication,
            VolumeStore store, Hosting.NbdEndpoints nbd, CancellationToken ct) => RemoveReplicaAsync(name, peer, replication, store, nbd, ct));

        volumes.MapPost("/{name}/promote", async (string name, PromoteRequest request, ReplicationService replication,
            VolumeStore store, Hosting.NbdEndpoints nbd, CancellationToken ct) =>
        {
            store.Get(name);
            await replication.PromoteAsync(name, request.Force, ct).ConfigureAwait(false);
            return VolumeEndpoints.View(store, nbd, replication, name);
        });

        volumes.MapPost("/{name}/resolve", (string name, ResolveRequest request, ReplicationService replication, TrustStore trust, HostIdentity identity,
            VolumeStore store, Hosting.NbdEndpoints nbd, CancellationToken ct) => ResolveAsync(name, request, replication, trust, identity, store, nbd, ct));
    }

    /// <summary>
    /// Stops replicating to a peer and tells it to drop its replica role. What can be told here is refused here
    /// (404: a missing volume, no replica on that peer; 409: a replica on this host); the engine refuses the rest (409).
    /// </summary>
    private static async Task<RemoveReplicaView> RemoveReplicaAsync(string name, string peer, ReplicationService replication,
        VolumeStore store, Hosting.NbdEndpoints nbd, CancellationToken ct)
    {
        var status = replication.GetStatus(name); // 404 for a missing volume
        if (status.Role == VolumeRole.Replica)
            throw new ApiException(ApiException.Conflict,
                $"volume '{name}' is a replica of {status.PrimaryPeer ?? "another host"} here: remove the replica on {status.PrimaryPeer ?? "its primary"} "
                + $"(roam volume unreplicate {name} --from HOST), or make this copy writable with: roam volume promote {name}");
        var replica = status.Replicas.FirstOrDefault(r => string.Equals(r.Peer, peer.Trim(), StringComparison.OrdinalIgnoreCase))
            ?? throw new ApiException(ApiException.NotFound, status.Replicas.Count == 0
                ? $"volume '{name}' is not replicated"
                : $"volume '{name}' has no replica on {peer}; its replicas: {string.Join(", ", status.Replicas.Select(r => r.Peer))}");
        var removal = await replication.RemoveReplicaAsync(name, replica.Peer, ct).ConfigureAwait(false);
        return new RemoveReplicaView(replica.Peer, removal.PeerDetached, removal.PeerError, VolumeEndpoints.View(store, nbd, replication, name));
    }

    /// <summary>
    /// Resolves a split brain on this host: the host named Keep wins. The engine does the work; here only what can be
    /// told for sure is refused (an unknown host, a volume in sync with that peer: nothing split).
    /// </summary>
    private static async Task<VolumeView> ResolveAsync(string name, ResolveRequest request, ReplicationService replication, TrustStore trust,
        HostIdentity identity, VolumeStore store, Hosting.NbdEndpoints nbd, CancellationToken ct)
    {
        var keep = request.Keep?.Trim();
        if (string.IsNullOrEmpty(keep))
            throw new ApiException(ApiException.BadRequest, $"say whose data to keep: this host ({identity.Name}) or the peer it split from (see: roam host list)");
        store.Get(name);
        bool keepHere = string.Equals(keep, identity.Name, StringComparison.OrdinalIgnoreCase);
        if (keepHere) keep = identity.Name;
        else if (trust.Find(keep) is { } peer) keep = peer.Name;
        else throw new ApiException(ApiException.NotFound, $"{keep} is neither this host ({identity.Name}) nor a trusted peer (see: roam host list)");
        var status = replication.GetStatus(name);
        if (keepHere && status.Role == VolumeRole.Replica)
            throw new ApiException(ApiException.Conflict,
                $"volume '{name}' is a replica of {status.PrimaryPeer ?? "(unknown)"} here: it has no data of its own to keep; resolve with --keep {status.PrimaryPeer ?? "HOST"}");
        if (!keepHere && status.Role == VolumeRole.Replica && string.Equals(status.PrimaryPeer, keep, StringComparison.OrdinalIgnoreCase))
            return VolumeEndpoints.View(store, nbd, replication, name); // already follows the keeper: nothing left to do here
        if (status.Replicas.FirstOrDefault(r => string.Equals(r.Peer, keep, StringComparison.OrdinalIgnoreCase)) is { State: ReplicaState.InSync or ReplicaState.Syncing } linked)
            throw new ApiException(ApiException.Conflict, $"volume '{name}' is {(linked.State == ReplicaState.InSync ? "in sync" : "syncing")} with {keep}: there is no split brain to resolve");
        if (keepHere && status.Role == VolumeRole.Primary && status.PrimaryPeer is null
            && !status.Replicas.Any(r => r.State is ReplicaState.SplitBrain or ReplicaState.Outdated or ReplicaState.Parted))
            throw new ApiException(ApiException.Conflict, $"volume '{name}' has no split brain here: no replica is split from it (see: roam volume show {name})");
        await replication.ResolveAsync(name, keep, ct).ConfigureAwait(false);
        return VolumeEndpoints.View(store, nbd, replication, name);
    }

    public static ReplicationView View(ReplicationStatus status) => new(
        status.Role == VolumeRole.Replica ? VolumeRoles.Replica : VolumeRoles.Primary,
        status.Generations.Current == Guid.Empty ? null : status.Generations.Current,
        status.PrimaryPeer,
        status.PrimaryConnected,
        [.. status.Replicas.Select(r => new ReplicaView(r.Peer, ModeName(r.Mode), r.State.ToString(), r.BytesOutOfSync, r.BytesSent, r.BytesResynced,
            r.PendingBytes, r.Lag.TotalSeconds, r.SyncedGeneration, r.Detail, r.BytesSavedByCompression, r.Bandwidth))],
        status.WritesRefused,
        status.HandOverPeer,
        status.Notice);

    /// <summary>
    /// Whether a replication link with each peer is up, from every volume's status: a replica link
    /// that is syncing or in sync, or a replica here whose primary is attached. Peers without any
    /// link are absent (unknown: nothing tries to reach them).
    /// </summary>
    private static Dictionary<string, bool> LinkStates(ReplicationService replication, VolumeStore store)
    {
        var states = new Dictionary<string, bool>(StringComparer.OrdinalIgnoreCase);
        foreach (var volume in store.List())
        {
            ReplicationStatus status;
            try { status = replication.GetStatus(volume.Name); }
            catch (VolumeException) { continue; } // deleted meanwhile
            foreach (var replica in status.Replicas.Where(r => r.State != ReplicaState.Parted))   // a parted link never tries to connect
                states[replica.Peer] = states.GetValueOrDefault(replica.Peer) || replica.State is ReplicaState.Syncing or ReplicaState.InSync;
            if (status.Role == VolumeRole.Replica && status.PrimaryPeer is { } primary)
                states[primary] = states.GetValueOrDefault(primary) || status.PrimaryConnected;
        }
        return states;
    }

    private static PeerView View(TrustedPeer peer, Dictionary<string, bool> links) =>
        new(peer.Name, peer.Address.ToString(), peer.Fingerprint.ToString(), links.TryGetValue(peer.Name, out var up) ? up : null);

    private static string ModeName(ReplicaMode mode) => mode == ReplicaMode.Sync ? "sync" : "async";

    private static ReplicaMode ParseMode(string? text) => text?.Trim().ToLowerInvariant() switch
    {
        null or "" or "sync" => ReplicaMode.Sync,
        "async" => ReplicaMode.Async,
        _ => throw new ApiException(ApiException.BadRequest, $"'{text}' is not a replication mode: use sync or async"),
    };
}
