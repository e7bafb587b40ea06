using Microsoft.Extensions.Logging;
using Roam.Daemon.Api;
using Roam.Daemon.Jobs;
using Roam.Nbd.Server;
using Roam.Storage.Volumes;

namespace Roam.Daemon.Hosting;

/// <summary>
/// Starts the NBD listeners and, on shutdown, stops in dependency order: running jobs are cancelled
/// (and clean up after themselves) while NBD still serves, then NBD clients are soft-disconnected
/// (requests in flight finish and are flushed). The volume store and the lock go last, in RoamdHost.
/// </summary>
internal sealed class DaemonService(
    RoamdOptions options,
    VolumeStore store,
    NbdServer server,
    NbdEndpoints endpoints,
    JobManager jobs,
    IHostApplicationLifetime lifetime,
    ILogger<DaemonService> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        _ = store; // resolved first: recovery has run before anything listens
        server.ListenUnix(options.NbdSocket);
        if (options.NbdListen is { } tcp) endpoints.Tcp = server.ListenTcp(tcp);
        lifetime.ApplicationStarted.Register(() => Log.Ready(logger, HostEndpoints.Version, options.DataDir, options.ControlSocket,
            options.NbdSocket, endpoints.TcpAddress is { } address ? $", nbd tcp {address}" : ""));
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        Log.Stopping(logger, jobs.RunningCount, server.ConnectionCount);
        await jobs.StopAsync(cancellationToken).ConfigureAwait(false);
        await server.StopAsync().ConfigureAwait(false);
        Log.Stopped(logger);
    }
}
