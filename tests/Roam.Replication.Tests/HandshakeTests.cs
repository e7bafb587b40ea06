using Roam.Peers.Protocol;
using Roam.Replication.Protocol;
using Roam.Replication.Tests.Support;
using Roam.Peers.Transport;

namespace Roam.Replication.Tests;

/// <summary>The Hello exchange over in-memory pipes: what happens after TLS, without TLS.</summary>
public sealed class HandshakeTests
{
    private static readonly CancellationToken Timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10)).Token;

    [Fact]
    public async Task Both_sides_agree_on_the_version_and_learn_each_others_name()
    {
        var (client, server) = TestPipes.Connected();
        var serverSide = PeerHandshake.ServerAsync(server, "alpha", Timeout);
        var result = await PeerHandshake.ClientAsync(client, "beta", Timeout);

        Assert.Equal(new PeerHelloAck(PeerProtocol.Version, "alpha"), result.Ack);
        Assert.Null(result.Error);
        Assert.Equal((PeerProtocol.Version, "beta"), await serverSide);
    }

    [Fact]
    public async Task A_client_with_no_common_version_gets_an_error_frame()
    {
        var (client, server) = TestPipes.Connected();
        PeerFrameWriter.WriteHello(client.Output, 0, new PeerHello(PeerProtocol.Version + 1, PeerProtocol.Version + 5, "future"));
        await client.Output.FlushAsync();

        var ex = await Assert.ThrowsAsync<PeerProtocolException>(() => PeerHandshake.ServerAsync(server, "alpha", Timeout));
        Assert.Equal(PeerRejection.UnsupportedVersion, ex.Rejection);
        var answer = await PeerFrameReader.ReadFrameAsync(client.Input, PeerProtocol.MaxHandshakePayload, Timeout);
        Assert.Equal(PeerFrameType.Error, answer!.Type);
        Assert.Equal(PeerErrorCode.UnsupportedVersion, PeerError.Read(answer.Payload).Code);
    }

    [Fact]
    public async Task Anything_but_hello_first_is_refused()
    {
        var (client, server) = TestPipes.Connected();
        ReplicationFrameWriter.WriteWrite(client.Output, 1, PeerFrameFlags.None, Guid.NewGuid(), 0, "early"u8);
        await client.Output.FlushAsync();

        var ex = await Assert.ThrowsAsync<PeerProtocolException>(() => PeerHandshake.ServerAsync(server, "alpha", Timeout));
        Assert.Equal(PeerRejection.UnexpectedFrame, ex.Rejection);
        var answer = await PeerFrameReader.ReadFrameAsync(client.Input, PeerProtocol.MaxHandshakePayload, Timeout);
        Assert.Equal(PeerErrorCode.ProtocolError, PeerError.Read(answer!.Payload).Code);
    }

    [Fact]
    public async Task A_server_that_closes_instead_of_answering_is_reported_as_such()
    {
        var (client, server) = TestPipes.Connected();
        await server.Output.CompleteAsync();
        var result = await PeerHandshake.ClientAsync(client, "beta", Timeout);
        Assert.Null(result.Ack);
        Assert.Null(result.Error);
    }

    [Fact]
    public async Task A_server_choosing_a_version_the_client_does_not_speak_is_a_protocol_error()
    {
        var (client, server) = TestPipes.Connected();
        PeerFrameWriter.WriteHelloAck(server.Output, 0, new PeerHelloAck(PeerProtocol.Version + 1, "alpha"));
        await server.Output.FlushAsync();
        var ex = await Assert.ThrowsAsync<PeerProtocolException>(() => PeerHandshake.ClientAsync(client, "beta", Timeout));
        Assert.Equal(PeerRejection.UnsupportedVersion, ex.Rejection);
    }
}
