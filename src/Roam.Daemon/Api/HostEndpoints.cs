using System.Reflection;
using Roam.Control;
using Roam.Daemon.Hosting;
using Roam.Daemon.Jobs;
using Roam.Replication.Engine;
using Roam.Peers.Identity;
using Roam.Storage.Volumes;

namespace Roam.Daemon.Api;

internal static class HostEndpoints
{
    public static string Version { get; } =
        typeof(HostEndpoints).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    public static void MapHostEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapGet("/v1/host", (RoamdOptions options, NbdEndpoints nbd, VolumeStore store, JobManager jobs, HostIdentity identity, ReplicationService replication,
            Network.VmNetworks networks) =>
            new HostInfo(Version, Environment.ProcessId, options.DataDir, options.ControlSocket, nbd.UnixSocket, nbd.TcpAddress,
                store.List().Count, jobs.RunningCount, identity.Name, identity.Fingerprint.ToString(),
                replication.ListenEndPoint is { } peer ? NbdEndpoints.FormatHostPort(peer) : null)
            {
                VmNetwork = options.VmNetwork,
                VmSubnet = networks.Default.Subnet.ToString(),
                VmBridge = networks.Default.Bridge,
                VmBridgeUp = networks.Default.IsUp,
            });
    }
}
