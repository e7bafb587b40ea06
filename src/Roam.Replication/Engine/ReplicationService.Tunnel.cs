using Roam.Nbd.Server;
using Roam.Replication.Transport;
using Roam.Replication.Tunnel;
using Roam.Storage.Volumes;

namespace Roam.Replication.Engine;

// Tunnels (see TunnelProtocol) and the exports of VMs arriving by live migration.
public sealed partial class ReplicationService
{
    /// <summary>Handles incoming tunnels (roamd's VM service). Without one, tunnels are closed at once.</summary>
    public Func<TunnelRequest, Task>? TunnelHandler { get; set; }

    /// <summary>Opens a tunnel to a trusted peer: connects (mutual TLS, pinned), sends <paramref name="requestJson"/>, reads the answer.</summary>
    /// <exception cref="PeerConnectException">The peer is not trusted, unreachable, or refused this host.</exception>
    /// <summary>
    /// 32 KiB: 26 ms at 10 Mbit/s, 2.6 ms at 100. When QEMU pauses the guest before the switch-over, what waits unsent
    /// still has to cross before the disk's last writes and the hand-over can (they share the link): at 128 KiB that was
    /// 105 ms of a 10 Mbit/s pause. The window in flight is not limited by it, so a fast link stays busy.
    /// </summary>
    private const int TunnelUnsentBytes = 32 * 1024;

    public async Task<TunnelConnection> OpenTunnelAsync(string peer, string requestJson, TimeSpan replyTimeout, CancellationToken cancellationToken)
    {
        var connection = await _connector.ConnectAsync(peer, cancellationToken).ConfigureAwait(false);
        // Tunnels carry QEMU's migration stream this way: little may wait unsent (see LimitUnsentBytes).
        connection.LimitUnsentBytes(TunnelUnsentBytes);
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(replyTimeout);
            TunnelProtocol.WriteFrame(connection.Transport.Output, requestJson);
            await connection.Transport.Output.FlushAsync(timeout.Token).ConfigureAwait(false);
            var reply = await TunnelProtocol.ReadFrameAsync(connection.Transport.Input, timeout.Token).ConfigureAwait(false)
                ?? throw new IOException($"{peer} closed the tunnel without answering (an older roamd?)");
            return new TunnelConnection(connection, reply);
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Routes an incoming peer connection on its first frame: a tunnel, or a replication session.</summary>
    private async Task RunIncomingAsync(PeerConnection connection, CancellationToken stopping)
    {
        bool tunnel;
        try { tunnel = await TunnelProtocol.IsTunnelAsync(connection.Transport.Input, stopping).ConfigureAwait(false); }
        catch (Exception ex) when (PeerConnection.IsTeardownNoise(ex))
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            return;
        }
        if (!tunnel)
        {
            await new Target.ReplicaSession(this, connection, _logger).RunAsync(stopping).ConfigureAwait(false);
            return;
        }
        try
        {
            var json = await TunnelProtocol.ReadFrameAsync(connection.Transport.Input, stopping).ConfigureAwait(false);
            if (json is not null && TunnelHandler is { } handler)
                await handler(new TunnelRequest(connection.PeerName, json, connection.Transport, stopping)).ConfigureAwait(false);
        }
        catch (Exception ex) when (PeerConnection.IsTeardownNoise(ex)) { }
        finally
        {
            try { await connection.DisposeAsync().ConfigureAwait(false); }
            catch (Exception ex) when (PeerConnection.IsTeardownNoise(ex)) { }
        }
    }

    /// <summary>
    /// Marks <paramref name="volume"/> as a VM's disk here (while its QEMU runs). Its export is then opened writable
    /// with a device that picks the write path at each request (<see cref="PromotableDevice"/>), because a VM keeps
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

    internal NbdExport? OpenVmDiskExport(string name, VolumeLease lease)
    {
        if (Volumes.Find(name) is not { } entry) return null;
        lock (entry.Gate)
            if (!entry.IsVmDisk) return null;
        return new NbdExport(name, new PromotableDevice(this, name, lease.Device), readOnly: false, lease);
    }
}
