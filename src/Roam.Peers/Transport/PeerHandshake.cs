using System.IO.Pipelines;
using Roam.Peers.Protocol;

namespace Roam.Peers.Transport;

/// <summary>The Hello exchange that follows TLS on both sides. Pipe-only, so tests can drive it in memory.</summary>
internal static class PeerHandshake
{
    /// <summary>Server side: reads Hello, answers HelloAck (or Error, then throws). Returns the version and the client's name.</summary>
    public static async Task<(ushort Version, string HostName)> ServerAsync(IDuplexPipe transport, string localName, CancellationToken cancellationToken)
    {
        var frame = await PeerFrameReader.ReadFrameAsync(transport.Input, PeerProtocol.MaxHandshakePayload, cancellationToken).ConfigureAwait(false)
            ?? throw new PeerProtocolException(PeerRejection.TruncatedFrame, "the client closed the connection before its Hello");
        if (frame.Type != PeerFrameType.Hello)
        {
            var error = new PeerProtocolException(PeerRejection.UnexpectedFrame, $"expected Hello, got {frame.Type}");
            await SendErrorAsync(transport, PeerErrorCode.ProtocolError, error.Message, cancellationToken).ConfigureAwait(false);
            throw error;
        }
        var hello = PeerHello.Read(frame.Payload);
        ushort version = Math.Min(hello.MaxVersion, PeerProtocol.Version);
        if (version < hello.MinVersion || version < PeerProtocol.MinVersion)
        {
            var message = $"no common protocol version: this host speaks {PeerProtocol.MinVersion}..{PeerProtocol.Version}, {hello.HostName} speaks {hello.MinVersion}..{hello.MaxVersion}";
            await SendErrorAsync(transport, PeerErrorCode.UnsupportedVersion, message, cancellationToken).ConfigureAwait(false);
            throw new PeerProtocolException(PeerRejection.UnsupportedVersion, message);
        }
        PeerFrameWriter.WriteHelloAck(transport.Output, 0, new PeerHelloAck(version, localName));
        await transport.Output.FlushAsync(cancellationToken).ConfigureAwait(false);
        return (version, hello.HostName);
    }

    /// <summary>
    /// Client side: sends Hello, reads the answer: a HelloAck, an Error, or neither when the server
    /// closed the connection (which is how it refuses a certificate it does not trust).
    /// </summary>
    public static async Task<ClientResult> ClientAsync(IDuplexPipe transport, string localName, CancellationToken cancellationToken)
    {
        PeerFrameWriter.WriteHello(transport.Output, 0, new PeerHello(PeerProtocol.MinVersion, PeerProtocol.Version, localName));
        await transport.Output.FlushAsync(cancellationToken).ConfigureAwait(false);
        var frame = await PeerFrameReader.ReadFrameAsync(transport.Input, PeerProtocol.MaxHandshakePayload, cancellationToken).ConfigureAwait(false);
        switch (frame?.Type)
        {
            case null:
                return new ClientResult(null, null);
            case PeerFrameType.Error:
                return new ClientResult(null, PeerError.Read(frame.Payload));
            case PeerFrameType.HelloAck:
                var ack = PeerHelloAck.Read(frame.Payload);
                if (ack.Version is < PeerProtocol.MinVersion or > PeerProtocol.Version)
                    throw new PeerProtocolException(PeerRejection.UnsupportedVersion, $"the server chose version {ack.Version}, outside {PeerProtocol.MinVersion}..{PeerProtocol.Version}");
                return new ClientResult(ack, null);
            default:
                throw new PeerProtocolException(PeerRejection.UnexpectedFrame, $"expected HelloAck, got {frame.Type}");
        }
    }

    private static async Task SendErrorAsync(IDuplexPipe transport, PeerErrorCode code, string message, CancellationToken cancellationToken)
    {
        try
        {
            PeerFrameWriter.WriteError(transport.Output, 0, new PeerError(0, code, message));
            await transport.Output.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (PeerConnection.IsTeardownNoise(ex))
        {
            // Best effort: the connection is being refused anyway.
        }
    }

    internal readonly record struct ClientResult(PeerHelloAck? Ack, PeerError? Error);
}
