using Roam.Peers.Transport;
using Roam.Peers.Tunnel;
using Roam.Storage.Volumes;

namespace Roam.Replication.Engine;

// Tunnels (see TunnelProtocol) and the exports of VMs arriving by live migration.
public sealed partial class ReplicationService
{
    private Func<TunnelRequest, Task>? _tunnelHandler;

    /// <summary>Handles incoming tunnels (roamd's VM service), routed to it by the peer server. Without one, tunnels are closed at once.</summary>
    public Func<TunnelRequest, Task>? TunnelHandler
    {
        get => _tunnelHandler;
        set
        {
            _tunnelHandler = value;
            if (_server is null) return; // routed when the server starts
            _server.Unroute(TunnelProtocol.FrameType);
            if (value is not null) _server.Route(TunnelProtocol.FrameType, Tunnels.Serve(value));
        }
    }

    /// <summary>Opens a tunnel to a trusted peer (see <see cref="Tunnels.OpenAsync"/>) with this host's connector.</summary>
    /// <exception cref="PeerConnectException">The peer is not trusted, unreachable, or refused this host.</exception>
    public Task<TunnelConnection> OpenTunnelAsync(string peer, string requestJson, TimeSpan replyTimeout, CancellationToken cancellationToken) =>
        Tunnels.OpenAsync(_connector, peer, requestJson, replyTimeout, cancellationToken);

    /// <summary>
    /// Marks <paramref name="volume"/> as a VM's disk here (while its QEMU runs). Its export is then opened writable
    /// with a device that picks the write path at each request (<see cref="Volumes.RoleRouter"/>), because a VM keeps
    /// one NBD connection for its whole life while the volume changes role under it:
    /// on the source, a plain primary becomes a replicated one when a migration starts, and its writes must then be
    /// mirrored (a connection opened on the plain device would bypass the mirroring); on the destination, QEMU started
    /// with -incoming must have its disk attached before the migration stream arrives, while the volume is still a
    /// replica. QEMU does not write during an incoming migration, and the VM runs there only after the hand-over made
    /// this host the primary; a write before that is refused with EPERM. Other clients keep the usual exports.
    /// </summary>
    public void SetVmDisk(string volume, bool isVmDisk)
    {
        if (!isVmDisk && Volumes.Find(volume) is null) return;
        var entry = Volumes.Get(volume);
        lock (entry.Gate) entry.IsVmDisk = isVmDisk;
    }

}
