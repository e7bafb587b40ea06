using Roam.Control;
using Roam.Daemon.Jobs;
using Roam.Daemon.Migration;
using Roam.Replication.Engine;
using Roam.Peers.Trust;
using Roam.Storage.Volumes;

namespace Roam.Daemon.Api;

/// <summary>
/// Live migration of a volume to a trusted peer: the steps one by one under /v1/volumes/{name}/migration
/// (prepare, status, wait, handover, abort: what a VM migration calls inside its switch-over window),
/// and the whole of it as a "migrate" job (POST /v1/volumes/{name}/migrate).
/// </summary>
internal static class MigrationEndpoints
{
    /// <summary>How long POST .../migration/wait waits when the caller says nothing.</summary>
    private const int DefaultWaitSeconds = 60;

    public static void MapMigrationEndpoints(this IEndpointRouteBuilder app)
    {
        var volumes = app.MapGroup("/v1/volumes");

        volumes.MapPost("/{name}/migration", async (string name, PrepareMigrationRequest request, ReplicationService replication, TrustStore trust,
            VolumeStore store, JobManager jobs, CancellationToken ct) =>
        {
            var peer = CheckPeer(name, request.Peer, replication, trust, store);
            RefuseIfMigrateJobRuns(jobs, name);
            return View(await replication.PrepareMigrationAsync(name, peer, ParseBandwidth(request.Bandwidth)?.ForDiskCopy, ct).ConfigureAwait(false));
        });

        volumes.MapGet("/{name}/migration", (string name, ReplicationService replication, VolumeStore store) =>
        {
            store.Get(name);
            return View(replication.FindMigration(name) ?? throw NoMigration(name));
        });

        volumes.MapPost("/{name}/migration/wait", async (string name, int? timeoutSeconds, ReplicationService replication, VolumeStore store,
            CancellationToken ct) =>
        {
            store.Get(name);
            if (replication.FindMigration(name) is null) throw NoMigration(name);
            int seconds = timeoutSeconds ?? DefaultWaitSeconds;
            if (seconds is < 0 or > 86400) throw new ApiException(ApiException.BadRequest, $"timeoutSeconds must be between 0 and 86400, not {seconds}");
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(TimeSpan.FromSeconds(seconds));
            try
            {
                await replication.WaitInSyncAsync(name, timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                var status = replication.GetMigration(name);
                throw new ApiException(RequestTimeout,
                    $"volume '{name}' is not in sync with {status.Peer} after {seconds} s: {Sizes(status.BytesLeft)} left to copy ({status.Phase})");
            }
            return View(replication.GetMigration(name));
        });

        volumes.MapPost("/{name}/migration/handover", async (string name, HandOverRequest? request, ReplicationService replication, VolumeStore store) =>
        {
            store.Get(name);
            if (replication.FindMigration(name) is null) throw NoMigration(name);
            // Not cancelled by a client that goes away: a hand-over half done is worse than one finished.
            var result = await replication.HandOverAsync(name, request?.KeepReplica ?? true, CancellationToken.None).ConfigureAwait(false);
            return View(result);
        });

        volumes.MapPost("/{name}/migration/abort", async (string name, ReplicationService replication, VolumeStore store) =>
        {
            store.Get(name);
            if (replication.FindMigration(name) is null) throw NoMigration(name);
            await replication.AbortMigrationAsync(name).ConfigureAwait(false);
            return View(replication.GetMigration(name));
        });

        volumes.MapPost("/{name}/migrate", (string name, MigrateRequest request, ReplicationService replication, TrustStore trust,
            VolumeStore store, JobManager jobs) =>
        {
            var peer = CheckPeer(name, request.Peer, replication, trust, store);
            RefuseIfMigrateJobRuns(jobs, name);
            var job = StartMigrateJob(jobs, replication, name, peer, request.KeepReplica ?? true, ParseBandwidth(request.Bandwidth), store.Status(name).Size);
            return TypedResults.Accepted($"/v1/jobs/{job.Id}", job.ToView());
        });
    }

    private const int RequestTimeout = 408;

    /// <summary>A bandwidth in bytes per second ("20M"), "0" for no limit, null when not given (see <see cref="MigrationBandwidth"/>).</summary>
    internal static MigrationBandwidth? ParseBandwidth(string? text) =>
        MigrationBandwidth.TryParse(text, out var bandwidth) ? bandwidth : throw new ApiException(ApiException.BadRequest, MigrationBandwidth.Invalid(text));

    private static Job StartMigrateJob(JobManager jobs, ReplicationService replication, string name, string peer, bool keepReplica, MigrationBandwidth? bandwidth, long size)
    {
        bool prepared = false; // once true, the engine holds a migration of this run (not an earlier one)
        return jobs.Start(JobKinds.Migrate, name, peer, "live", size, job => job.BeginMigration(peer), async (job, ct) =>
        {
            var progress = new InlineProgress(status =>
            {
                prepared = true;
                job.ReportMigration(View(status));
            });
            try
            {
                var result = await replication.MigrateAsync(name, peer, keepReplica, progress, ct, bandwidth?.ForDiskCopy).ConfigureAwait(false);
                job.ReportMigration(View(result.Status));
                job.ReportHandOver(View(result.HandOver));
                return null;
            }
            catch
            {
                if (prepared && replication.FindMigration(name) is { } last) job.ReportMigration(View(last));
                throw;
            }
        }, async _ =>
        {
            // The engine aborts a cancelled migration itself; anything else that stopped the job before the hand-over
            // must not leave writes mirrored synchronously to a peer nobody is waiting for.
            if (prepared && replication.FindMigration(name)?.Phase is VolumeMigrationPhase.Preparing or VolumeMigrationPhase.Copying or VolumeMigrationPhase.InSync)
                await replication.AbortMigrationAsync(name).ConfigureAwait(false);
        });
    }

    private static string CheckPeer(string name, string? peer, ReplicationService replication, TrustStore trust, VolumeStore store)
    {
        if (string.IsNullOrWhiteSpace(peer)) throw new ApiException(ApiException.BadRequest, "a peer is required: the name of a trusted host to migrate to (see: roam host list)");
        store.Get(name); // 404 for a missing volume before anything about peers
        if (trust.Find(peer) is null)
            throw new ApiException(ApiException.NotFound, $"no trusted peer is named {peer}; add it first with: roam host add {peer} ADDR:PORT --fingerprint FP");
        var status = replication.GetStatus(name);
        if (status.Role == VolumeRole.Replica)
            throw new ApiException(ApiException.Conflict,
                $"volume '{name}' is a replica here; migrate it from its primary {status.PrimaryPeer ?? "(unknown)"}");
        return peer;
    }

    private static void RefuseIfMigrateJobRuns(JobManager jobs, string name)
    {
        if (jobs.FindRunning(JobKinds.Migrate, name) is { } running)
            throw new ApiException(ApiException.Conflict, $"volume '{name}' is already being migrated by job {running.Id} (cancel it with: roam job cancel {running.Id})");
    }

    private static ApiException NoMigration(string name) =>
        new(ApiException.NotFound, $"no migration of volume '{name}' was started here (start one with: roam volume migrate {name} --to HOST)");

    private static MigrationView View(MigrationStatus s) => MigrationViews.View(s);

    private static HandOverView View(HandOverResult r) => MigrationViews.View(r);

    private static string Sizes(long bytes) => bytes >= 1 << 20
        ? string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{bytes / (1024.0 * 1024):0.#} MiB")
        : string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{bytes} bytes");

    /// <summary>Reports on the caller's thread (Progress&lt;T&gt; would post, and reorder, the reports).</summary>
    private sealed class InlineProgress(Action<MigrationStatus> report) : IProgress<MigrationStatus>
    {
        public void Report(MigrationStatus value) => report(value);
    }
}
