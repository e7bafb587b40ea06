using System.Net;
using System.Threading.Channels;
using Roam.Peers.Protocol;
using Roam.Peers.Transport;
using Roam.Peers.Tunnel;
using Roam.Replication.Protocol;
using Roam.Replication.Tests.Support;

namespace Roam.Replication.Tests;

/// <summary>
/// The peer server routes each authenticated connection on its first frame's type, unconsumed, to the handler a
/// layer registered; the rest go to the fallback or are closed. Real sockets and TLS 1.3 on 127.0.0.1.
/// </summary>
public sealed class PeerServerTests : IAsyncLifetime
{
    private readonly TestHost _alpha = new("alpha");
    private readonly TestHost _beta = new("beta");
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromSeconds(30));
    private PeerServer _server = null!;

    public Task InitializeAsync()
    {
        _server = PeerServer.Start(_alpha.Identity, _alpha.Trust, new PeerListenerOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, 0) }, _alpha.Log);
        _alpha.Trusts(_beta);
        _beta.Trust.Add("alpha", $"127.0.0.1:{_server.LocalEndPoint.Port}", _alpha.Identity.Fingerprint.ToString());
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        await _alpha.DisposeAsync();
        await _beta.DisposeAsync();
        _timeout.Dispose();
    }

    /// <summary>A handler that records which route served the connection and the first frame it read there.</summary>
    private static PeerConnectionHandler Recording(string route, Channel<(string Route, PeerFrameType Type, string Peer)> seen) =>
        async (connection, stopping) =>
        {
            var frame = await PeerFrameReader.ReadFrameAsync(connection.Transport.Input, PeerProtocol.DefaultMaxPayload, stopping);
            await seen.Writer.WriteAsync((route, frame!.Type, connection.PeerName), stopping);
            ReplicationFrameWriter.WriteAck(connection.Transport.Output, 1, new PeerAck(frame.Header.Sequence));
            await connection.Transport.Output.FlushAsync(stopping);
        };

    [Fact]
    public async Task Each_connection_goes_to_the_route_of_its_first_frame_which_still_reads_that_frame()
    {
        var seen = Channel.CreateUnbounded<(string Route, PeerFrameType Type, string Peer)>();
        _server.Route(PeerFrameType.Attach, Recording("attach", seen));
        _server.Fallback = Recording("fallback", seen);

        foreach (var (type, expected) in new[] { (PeerFrameType.Attach, "attach"), (PeerFrameType.Flush, "fallback") })
        {
            await using var client = await _beta.Connector().ConnectAsync("alpha", _timeout.Token);
            if (type == PeerFrameType.Attach)
                ReplicationFrameWriter.WriteAttach(client.Transport.Output, 7, new PeerAttach(Guid.NewGuid(), 4096, new(Guid.NewGuid(), []), "vol"));
            else
                ReplicationFrameWriter.WriteFlush(client.Transport.Output, 7, new PeerFlush(Guid.NewGuid()));
            await client.Transport.Output.FlushAsync(_timeout.Token);
            Assert.Equal((expected, type, "beta"), await seen.Reader.ReadAsync(_timeout.Token));
            var ack = await PeerFrameReader.ReadFrameAsync(client.Transport.Input, PeerProtocol.MaxHandshakePayload, _timeout.Token);
            Assert.Equal(new PeerAck(7), PeerAck.Read(ack!.Payload));
        }
    }

    [Fact]
    public async Task A_tunnel_reaches_its_handler_with_the_request_and_answers_on_the_same_connection()
    {
        _server.Route(TunnelProtocol.FrameType, Tunnels.Serve(async request =>
        {
            TunnelProtocol.WriteFrame(request.Transport.Output, $"{{\"from\":\"{request.Peer}\",\"echo\":{request.Json}}}");
            await request.Transport.Output.FlushAsync(request.Stopping);
        }));
        await using var tunnel = await Tunnels.OpenAsync(_beta.Connector(), "alpha", "{\"op\":\"ping\"}", TimeSpan.FromSeconds(10), _timeout.Token);
        Assert.Equal("{\"from\":\"beta\",\"echo\":{\"op\":\"ping\"}}", tunnel.Reply);
    }

    [Fact]
    public async Task A_connection_nothing_serves_is_closed_and_logged()
    {
        await using var client = await _beta.Connector().ConnectAsync("alpha", _timeout.Token);
        ReplicationFrameWriter.WriteFlush(client.Transport.Output, 1, new PeerFlush(Guid.NewGuid()));
        await client.Transport.Output.FlushAsync(_timeout.Token);
        Assert.Null(await PeerFrameReader.ReadFrameAsync(client.Transport.Input, PeerProtocol.MaxHandshakePayload, _timeout.Token));
        var unrouted = Assert.Single(_alpha.Log.Entries, e => e.EventId.Id == 3007);
        Assert.Equal((ushort)PeerFrameType.Flush, unrouted.Values["FrameType"]);
    }

    [Fact]
    public void A_frame_type_is_routed_once()
    {
        _server.Route(PeerFrameType.Detach, (_, _) => Task.CompletedTask);
        Assert.Throws<InvalidOperationException>(() => _server.Route(PeerFrameType.Detach, (_, _) => Task.CompletedTask));
        _server.Unroute((ushort)PeerFrameType.Detach);
        _server.Route(PeerFrameType.Detach, (_, _) => Task.CompletedTask);
    }
}
