using System.Buffers;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using Roam.Peers.Protocol;
using Roam.Replication.Protocol;
using Roam.Replication.Tests.Support;
using Roam.Peers.Transport;

namespace Roam.Replication.Tests;

/// <summary>
/// Real sockets on 127.0.0.1 and real TLS 1.3, with identities made at test start: "alpha" listens,
/// "beta" connects, each trusting the other. One test per way of being refused.
/// </summary>
public sealed class MutualTlsTests : IAsyncLifetime
{
    private static readonly TimeSpan Quiet = TimeSpan.FromMilliseconds(300);
    private readonly TestHost _alpha = new("alpha");
    private readonly TestHost _beta = new("beta");
    private readonly List<TestHost> _others = [];
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromSeconds(30));

    public Task InitializeAsync()
    {
        _alpha.Listen();
        _alpha.Trusts(_beta);
        _beta.Trusts(_alpha);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _alpha.DisposeAsync();
        await _beta.DisposeAsync();
        foreach (var other in _others) await other.DisposeAsync();
        _timeout.Dispose();
    }

    private TestHost Host(string name)
    {
        var host = new TestHost(name);
        _others.Add(host);
        return host;
    }

    private IPEndPoint AlphaEndPoint => _alpha.Listener!.LocalEndPoint;

    [Fact]
    public async Task Trusted_pair_connects_and_exchanges_hello_and_a_write()
    {
        var accept = _alpha.Listener!.AcceptConnectionAsync(_timeout.Token).AsTask();
        await using var client = await _beta.Connector().ConnectAsync("alpha", _timeout.Token);
        await using var server = await accept;

        Assert.Equal(("alpha", "alpha", _alpha.Identity.Fingerprint, PeerProtocol.Version),
            (client.PeerName, client.RemoteHostName, client.RemoteFingerprint, client.ProtocolVersion));
        Assert.Equal(("beta", "beta", _beta.Identity.Fingerprint, PeerProtocol.Version),
            (server.PeerName, server.RemoteHostName, server.RemoteFingerprint, server.ProtocolVersion));

        var volume = Guid.NewGuid();
        var data = new byte[300 * 1024];
        new Random(1).NextBytes(data);
        ReplicationFrameWriter.WriteWrite(client.Transport.Output, 1, PeerFrameFlags.Fua, volume, 8192, data);
        await client.Transport.Output.FlushAsync(_timeout.Token);

        var frame = await PeerFrameReader.ReadFrameAsync(server.Transport.Input, PeerProtocol.DefaultMaxPayload, _timeout.Token);
        Assert.Equal(new PeerFrameHeader(PeerFrameType.Write, PeerFrameFlags.Fua, 1, PeerWrite.FixedLength + data.Length), frame!.Header);
        var write = PeerWrite.Read(frame.Payload);
        Assert.Equal((volume, 8192ul), (write.VolumeId, write.Offset));
        Assert.Equal(data, write.Data.ToArray());

        ReplicationFrameWriter.WriteAck(server.Transport.Output, 1, new PeerAck(1));
        await server.Transport.Output.FlushAsync(_timeout.Token);
        var ack = await PeerFrameReader.ReadFrameAsync(client.Transport.Input, PeerProtocol.MaxHandshakePayload, _timeout.Token);
        Assert.Equal(new PeerAck(1), PeerAck.Read(ack!.Payload));
        Assert.Empty(_alpha.Log.Refusals);
    }

    [Fact]
    public async Task Unknown_client_certificate_is_refused_and_never_accepted()
    {
        var stranger = Host("gamma");
        stranger.Trusts(_alpha);

        var ex = await Assert.ThrowsAsync<PeerConnectException>(() => stranger.Connector().ConnectAsync("alpha", _timeout.Token));
        Assert.Equal(PeerConnectFailure.Refused, ex.Failure);

        var refusal = await _alpha.Log.WaitForRefusalAsync(PeerRefusal.UntrustedCertificate);
        Assert.Equal(stranger.Identity.Fingerprint.ToString(), refusal.Values["Fingerprint"]);
        await AssertNothingAcceptedAsync();
    }

    [Fact]
    public async Task A_peer_removed_from_the_trust_store_is_refused_on_its_next_connection()
    {
        var accept = _alpha.Listener!.AcceptConnectionAsync(_timeout.Token).AsTask();
        await using (await _beta.Connector().ConnectAsync("alpha", _timeout.Token))
        await using (await accept) { }

        Assert.True(_alpha.Trust.Remove("beta"));
        var ex = await Assert.ThrowsAsync<PeerConnectException>(() => _beta.Connector().ConnectAsync("alpha", _timeout.Token));
        Assert.Equal(PeerConnectFailure.Refused, ex.Failure);
        await _alpha.Log.WaitForRefusalAsync(PeerRefusal.UntrustedCertificate);
    }

    [Fact]
    public async Task Server_whose_certificate_is_not_the_pinned_one_is_refused_by_the_client()
    {
        // delta trusts "alpha" at alpha's address, but with another host's fingerprint, as if
        // something else were answering there. Alpha trusts delta, so only the client can object.
        var delta = Host("delta");
        var impostor = Host("mallory");
        delta.Trust.Add("alpha", $"127.0.0.1:{AlphaEndPoint.Port}", impostor.Identity.Fingerprint.ToString());
        _alpha.Trusts(delta);

        var ex = await Assert.ThrowsAsync<PeerConnectException>(() => delta.Connector().ConnectAsync("alpha", _timeout.Token));
        Assert.Equal(PeerConnectFailure.ServerCertificateMismatch, ex.Failure);
        Assert.Contains(_alpha.Identity.Fingerprint.ToString(), ex.Message);
        await AssertNothingAcceptedAsync();
    }

    [Fact]
    public async Task Client_without_a_certificate_is_refused()
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(AlphaEndPoint, _timeout.Token);
        await using var tls = new SslStream(tcp.GetStream());
        var failed = await FailsAsync(async () =>
        {
            await tls.AuthenticateAsClientAsync(RawClientOptions(SslProtocols.Tls13), _timeout.Token);
            // TLS 1.3: the client may finish first and hear the refusal on its first read.
            return await tls.ReadAsync(new byte[16], _timeout.Token);
        });
        Assert.True(failed);
        await _alpha.Log.WaitForRefusalAsync(PeerRefusal.NoCertificate);
        await AssertNothingAcceptedAsync();
    }

    [Fact]
    public async Task Tls_below_1_3_is_refused_even_with_a_trusted_certificate()
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(AlphaEndPoint, _timeout.Token);
        await using var tls = new SslStream(tcp.GetStream());
        var options = RawClientOptions(SslProtocols.Tls12);
        options.ClientCertificates = [_beta.Identity.Certificate];
        await Assert.ThrowsAnyAsync<Exception>(() => tls.AuthenticateAsClientAsync(options, _timeout.Token));
        var refusal = await _alpha.Log.WaitForRefusalAsync(PeerRefusal.TlsFailed);
        Assert.Equal("-", refusal.Values["Fingerprint"]);
        await AssertNothingAcceptedAsync();
    }

    [Fact]
    public async Task Plain_tcp_bytes_are_refused_and_the_listener_keeps_serving()
    {
        using (var tcp = new TcpClient())
        {
            await tcp.ConnectAsync(AlphaEndPoint, _timeout.Token);
            var stream = tcp.GetStream();
            var junk = new byte[2048];
            new Random(42).NextBytes(junk);
            junk[0] = (byte)'G';   // no TLS record starts with a letter: "GET / HTTP/1.1" is the classic stray client
            await stream.WriteAsync(junk, _timeout.Token);
            Assert.True(await ClosedByServerAsync(stream));
        }
        await _alpha.Log.WaitForRefusalAsync(PeerRefusal.TlsFailed);

        var accept = _alpha.Listener!.AcceptConnectionAsync(_timeout.Token).AsTask();
        await using var client = await _beta.Connector().ConnectAsync("alpha", _timeout.Token);
        await using var server = await accept;
        PeerFrameWriter.WriteHeartbeat(client.Transport.Output, 1);
        await client.Transport.Output.FlushAsync(_timeout.Token);
        var frame = await PeerFrameReader.ReadFrameAsync(server.Transport.Input, PeerProtocol.MaxHandshakePayload, _timeout.Token);
        Assert.Equal(PeerFrameType.Heartbeat, frame!.Type);
    }

    [Fact]
    public async Task A_silent_client_is_dropped_after_the_handshake_timeout()
    {
        var slow = Host("epsilon");
        slow.Listen(handshakeTimeout: TimeSpan.FromMilliseconds(300));
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(slow.Listener!.LocalEndPoint, _timeout.Token);

        Assert.True(await ClosedByServerAsync(tcp.GetStream()));
        await slow.Log.WaitForRefusalAsync(PeerRefusal.HandshakeTimeout);
    }

    [Fact]
    public async Task Connecting_to_an_unknown_or_unreachable_peer_fails_with_its_reason()
    {
        var unknown = await Assert.ThrowsAsync<PeerConnectException>(() => _beta.Connector().ConnectAsync("nobody", _timeout.Token));
        Assert.Equal(PeerConnectFailure.UnknownPeer, unknown.Failure);

        int closedPort;
        using (var probe = new TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            closedPort = ((IPEndPoint)probe.LocalEndpoint).Port;
        }
        _beta.Trust.Add("gone", $"127.0.0.1:{closedPort}", Host("zeta").Identity.Fingerprint.ToString());
        var gone = await Assert.ThrowsAsync<PeerConnectException>(() => _beta.Connector().ConnectAsync("gone", _timeout.Token));
        Assert.Equal(PeerConnectFailure.Unreachable, gone.Failure);
    }

    [Fact]
    public async Task A_server_that_never_answers_times_out()
    {
        // The kernel completes the TCP handshake from the backlog; nothing ever answers the ClientHello.
        using var mute = new TcpListener(IPAddress.Loopback, 0);
        mute.Start();
        _beta.Trust.Add("mute", $"127.0.0.1:{((IPEndPoint)mute.LocalEndpoint).Port}", Host("eta").Identity.Fingerprint.ToString());
        var connector = new PeerConnector(_beta.Identity, _beta.Trust, new PeerConnectorOptions { Timeout = TimeSpan.FromMilliseconds(300) }, _beta.Log);

        var ex = await Assert.ThrowsAsync<PeerConnectException>(() => connector.ConnectAsync("mute", _timeout.Token));
        Assert.Equal(PeerConnectFailure.Timeout, ex.Failure);
    }

    [Fact]
    public async Task A_disposed_listener_accepts_nothing_more()
    {
        var port = AlphaEndPoint.Port;
        await _alpha.Listener!.DisposeAsync();
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await _alpha.Listener.AcceptConnectionAsync(_timeout.Token));
        var ex = await Assert.ThrowsAsync<PeerConnectException>(() => _beta.Connector().ConnectAsync("alpha", _timeout.Token));
        Assert.Equal(PeerConnectFailure.Unreachable, ex.Failure);
        Assert.Equal(port, _beta.Trust.Find("alpha")!.Address.Port);
    }

    private async Task AssertNothingAcceptedAsync()
    {
        using var wait = new CancellationTokenSource(Quiet);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await _alpha.Listener!.AcceptConnectionAsync(wait.Token));
    }

    private static SslClientAuthenticationOptions RawClientOptions(SslProtocols protocols) => new()
    {
        TargetHost = "alpha",
        EnabledSslProtocols = protocols,
        ApplicationProtocols = [new SslApplicationProtocol(PeerProtocol.ApplicationProtocol)],
        RemoteCertificateValidationCallback = (_, _, _, _) => true,
    };

    /// <summary>True when the operation throws or reads end of stream: the server would not talk.</summary>
    private static async Task<bool> FailsAsync(Func<Task<int>> operation)
    {
        try
        {
            return await operation() == 0;
        }
        catch (Exception ex) when (ex is AuthenticationException or IOException)
        {
            return true;
        }
    }

    /// <summary>Reads until the server closes (whatever alert it sends first); false if it keeps the connection open.</summary>
    private async Task<bool> ClosedByServerAsync(NetworkStream stream)
    {
        var buffer = new byte[4096];
        try
        {
            while (await stream.ReadAsync(buffer, _timeout.Token) > 0) { }
            return true;
        }
        catch (IOException)
        {
            return true;   // reset by the server
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }
}
