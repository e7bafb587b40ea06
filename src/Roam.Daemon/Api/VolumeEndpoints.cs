using Roam.Control;
using Roam.Daemon.Hosting;
using Roam.Daemon.Jobs;
using Roam.Replication.Engine;
using Roam.Storage.Volumes;

namespace Roam.Daemon.Api;

/// <summary>/v1/volumes: the volume store, plus import and export jobs.</summary>
internal static class VolumeEndpoints
{
    public static void MapVolumeEndpoints(this IEndpointRouteBuilder app)
    {
        var volumes = app.MapGroup("/v1/volumes");

        volumes.MapGet("/", (VolumeStore store, NbdEndpoints nbd, ReplicationService replication) =>
            (IReadOnlyList<VolumeView>)[.. store.List().Select(v => View(store, nbd, replication, v.Name))]);

        volumes.MapPost("/", (CreateVolumeRequest request, VolumeStore store, NbdEndpoints nbd, ReplicationService replication) =>
        {
            var name = request.Name ?? "";
            VolumeName.Validate(name);
            store.Create(name, ParseSize(request.Size));
            return TypedResults.Created($"/v1/volumes/{name}", View(store, nbd, replication, name));
        });

        volumes.MapGet("/{name}", (string name, VolumeStore store, NbdEndpoints nbd, ReplicationService replication) => View(store, nbd, replication, name));

        volumes.MapPost("/{name}/resize", (string name, ResizeVolumeRequest request, VolumeStore store, NbdEndpoints nbd, ReplicationService replication) =>
        {
            var size = ParseSize(request.Size);
            RefuseIfReplicated(replication, name, "resize");
            store.Resize(name, size);
            return View(store, nbd, replication, name);
        });

        volumes.MapDelete("/{name}", async (string name, VolumeStore store, ReplicationService replication, CancellationToken ct) =>
        {
            RefuseIfReplicated(replication, name, "delete", partedLinksGo: true);
            store.Get(name);
            await replication.ForgetVolumeAsync(name, ct).ConfigureAwait(false);
            store.Delete(name);
            return TypedResults.NoContent();
        });

        volumes.MapPost("/{name}/import", async (string name, ImportRequest request, TransferService transfers, CancellationToken ct) =>
        {
            var job = await transfers.StartImportAsync(name, request, ct).ConfigureAwait(false);
            return TypedResults.Accepted($"/v1/jobs/{job.Id}", job.ToView());
        });

        volumes.MapPost("/{name}/export", (string name, ExportRequest request, TransferService transfers) =>
        {
            var job = transfers.StartExport(name, request);
            return TypedResults.Accepted($"/v1/jobs/{job.Id}", job.ToView());
        });
    }

    public static VolumeView View(VolumeStore store, NbdEndpoints nbd, ReplicationService replication, string name)
    {
        var s = store.Status(name);
        return new VolumeView(s.Name, s.Size, s.AllocatedBytes, s.OpenCount, s.Id, s.Created, nbd.UrisFor(s.Name),
            ReplicationEndpoints.View(replication.GetStatus(name)),
            replication.FindMigration(name) is { } migration ? Roam.Daemon.Migration.MigrationViews.View(migration) : null);
    }

    /// <summary>
    /// A replica, or a primary with replicas, must not change under replication's feet (404 first for a missing volume).
    /// A promoted volume's parted link (see ReplicaState.Parted) replicates nothing: it goes with a deleted volume, but
    /// a resize would make its bitmap meaningless, so that is refused until it is resolved or dropped.
    /// </summary>
    private static void RefuseIfReplicated(ReplicationService replication, string name, string verb, bool partedLinksGo = false)
    {
        var status = replication.GetStatus(name);
        if (status.Role == VolumeRole.Replica)
            throw new ApiException(ApiException.Conflict,
                $"cannot {verb} volume '{name}': it is a replica of {status.PrimaryPeer ?? "another host"}; promote it first (roam volume promote {name})");
        if (status.Replicas.Where(r => r.State != ReplicaState.Parted).Select(r => r.Peer).ToList() is { Count: > 0 } replicas)
            throw new ApiException(ApiException.Conflict, $"cannot {verb} volume '{name}': it is replicated to {string.Join(", ", replicas)}");
        if (!partedLinksGo && status.Replicas.FirstOrDefault(r => r.State == ReplicaState.Parted) is { } parted)
            throw new ApiException(ApiException.Conflict,
                $"cannot {verb} volume '{name}': it was promoted away from {parted.Peer} and tracks what it wrote since, for a split brain's resolve; "
                + $"resolve it (roam volume resolve {name} --keep HOST, on both hosts) or drop that with: roam volume unreplicate {name} --from {parted.Peer}");
    }

    private static long ParseSize(string? text)
    {
        if (string.IsNullOrWhiteSpace(text)) throw new VolumeException(VolumeError.InvalidSize, "a size is required (examples: 512, 64K, 10M, 10G, 2T)");
        if (!ByteSize.TryParse(text, out var bytes))
            throw new VolumeException(VolumeError.InvalidSize, $"'{text}' is not a size (examples: 512, 64K, 10M, 10G, 2T)");
        return bytes;
    }
}
