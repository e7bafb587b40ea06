using Microsoft.Extensions.Logging;
using Roam.Daemon.Api;
using Roam.Daemon.Jobs;
using Roam.Nbd.Server;
using Roam.Replication.Engine;
using Roam.Storage.Volumes;

namespace Roam.Daemon.Hosting;

/// <summary>
/// Starts the NBD listeners and, on shutdown, stops in dependency order: running jobs are cancelled
/// (and clean up after themselves) while NBD still serves, then NBD clients are soft-disconnected
/// (requests in flight finish and are flushed), then replication stops cleanly (links closed, bitmaps
/// saved, activity logs marked clean). The volume store and the lock go last, in RoamdHost.
/// </summary>
internal sealed class DaemonService(
    RoamdOptions options,
    VolumeStore store,
    NbdServer server,
    ReplicationService replication,
    NbdEndpoints endpoints,
    JobManager jobs,
    IHostApplicationLifetime lifetime,
    ILogger<DaemonService> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        _ = store; // resolved first: recovery has run before anything listens
        // Replicated primaries are reopened (their activity logs replayed) before NBD clients can write to them.
        await replication.StartAsync(options.PeerListen, cancellationToken).ConfigureAwait(false);
        server.ListenUnix(options.NbdSocket);
        if (options.NbdListen is { } tcp) endpoints.Tcp = server.ListenTcp(tcp);
        lifetime.ApplicationStarted.Register(() => Log.Ready(logger, HostEndpoints.Version, options.DataDir, options.ControlSocket,
            options.NbdSocket, (endpoints.TcpAddress is { } address ? $", nbd tcp {address}" : "")
                + (replication.ListenEndPoint is { } peer ? $", peers {NbdEndpoints.FormatHostPort(peer)}" : "")));
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        Log.Stopping(logger, jobs.RunningCount, server.ConnectionCount);
        await jobs.StopAsync(cancellationToken).ConfigureAwait(false);
        await server.StopAsync().ConfigureAwait(false);
        await replication.DisposeAsync().ConfigureAwait(false);
        Log.Stopped(logger);
    }
}
