using Roam.Peers.Transport;

namespace Roam.Peers.Tunnel;

/// <summary>Both ends of a tunnel (see <see cref="TunnelProtocol"/>): the route that serves them, and opening one.</summary>
public static class Tunnels
{
    /// <summary>
    /// 32 KiB: 26 ms at 10 Mbit/s, 2.6 ms at 100. When QEMU pauses the guest before the switch-over, what waits unsent
    /// still has to cross before the disk's last writes and the hand-over can (they share the link): at 128 KiB that was
    /// 105 ms of a 10 Mbit/s pause. The window in flight is not limited by it, so a fast link stays busy.
    /// </summary>
    private const int UnsentBytes = 32 * 1024;

    /// <summary>The <see cref="PeerServer"/> route for <see cref="TunnelProtocol.FrameType"/>: reads the request, hands it on.</summary>
    public static PeerConnectionHandler Serve(Func<TunnelRequest, Task> handler) => async (connection, stopping) =>
    {
        var json = await TunnelProtocol.ReadFrameAsync(connection.Transport.Input, stopping).ConfigureAwait(false);
        if (json is not null) await handler(new TunnelRequest(connection.PeerName, json, connection.Transport, stopping)).ConfigureAwait(false);
    };

    /// <summary>Opens a tunnel to a trusted peer: connects (mutual TLS, pinned), sends <paramref name="requestJson"/>, reads the answer.</summary>
    /// <exception cref="PeerConnectException">The peer is not trusted, unreachable, or refused this host.</exception>
    public static async Task<TunnelConnection> OpenAsync(PeerConnector connector, string peer, string requestJson, TimeSpan replyTimeout,
        CancellationToken cancellationToken)
    {
        var connection = await connector.ConnectAsync(peer, cancellationToken).ConfigureAwait(false);
        // Tunnels carry QEMU's migration stream: little may wait unsent (see UnsentBytes).
        connection.LimitUnsentBytes(UnsentBytes);
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
}
