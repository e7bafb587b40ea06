using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using Roam.Peers.Identity;

namespace Roam.Peers.Transport;

/// <summary>
/// An authenticated peer connection: TLS 1.3 with both certificates pinned, and Hello exchanged.
/// The protocol above sees only <see cref="Transport"/>, a duplex pipe (Kestrel's seam), so it can
/// run over in-memory pipes in tests.
/// </summary>
public sealed class PeerConnection : IAsyncDisposable
{
    private static readonly TimeSpan CloseTimeout = TimeSpan.FromSeconds(5);

    private readonly SslStream? _stream;
    private readonly Socket? _socket;
    private int _disposed;

    internal PeerConnection(string peerName, string remoteHostName, CertificateFingerprint remoteFingerprint, ushort protocolVersion,
        EndPoint? remoteEndPoint, IDuplexPipe transport, SslStream? stream, Socket? socket)
    {
        PeerName = peerName;
        RemoteHostName = remoteHostName;
        RemoteFingerprint = remoteFingerprint;
        ProtocolVersion = protocolVersion;
        RemoteEndPoint = remoteEndPoint;
        Transport = transport;
        _stream = stream;
        _socket = socket;
    }

    /// <summary>The peer's name in this host's trust store.</summary>
    public string PeerName { get; }

    /// <summary>The host name the peer announced in its Hello (informational: trust comes from the fingerprint).</summary>
    public string RemoteHostName { get; }

    public CertificateFingerprint RemoteFingerprint { get; }

    public ushort ProtocolVersion { get; }

    public EndPoint? RemoteEndPoint { get; }

    /// <summary>
    /// Keeps at most <paramref name="bytes"/> not yet sent in the kernel's send buffer (Linux TCP_NOTSENT_LOWAT), the
    /// window in flight still growing with the link. A relayed QEMU migration stream needs it: QEMU counts what it
    /// handed over as sent, so megabytes parked in an autotuned send buffer both mislead its bandwidth estimate and
    /// arrive after its "downtime" is over, lengthening the pause the guest sees. Best effort (false if refused).
    /// </summary>
    public bool LimitUnsentBytes(int bytes)
    {
        const int IpProtoTcp = 6, TcpNotSentLowat = 25;
        if (_socket is null || !OperatingSystem.IsLinux()) return false;
        try
        {
            Span<byte> value = stackalloc byte[sizeof(int)];
            System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(value, bytes);
            _socket.SetRawSocketOption(IpProtoTcp, TcpNotSentLowat, value);
            return true;
        }
        catch (SocketException) { return false; }
    }

    /// <summary>Frames in and out (see <see cref="Protocol.PeerFrameReader"/> and <see cref="Protocol.PeerFrameWriter"/>).</summary>
    public IDuplexPipe Transport { get; }

    internal static IDuplexPipe CreateTransport(SslStream stream) => new DuplexPipe(
        // 64 KiB reads: Write frames carry up to 4 MiB, and 4 KiB reads would cost a syscall each.
        PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 64 * 1024, minimumReadSize: 16 * 1024, leaveOpen: true)),
        PipeWriter.Create(stream, new StreamPipeWriterOptions(minimumBufferSize: 64 * 1024, leaveOpen: true)));

    /// <summary>
    /// Half-closes the sending side: flushes what was written and sends TLS close_notify, so the peer's
    /// reader sees the end of the stream while this side can still read (a relayed stream's EOF).
    /// </summary>
    public async Task ShutdownSendAsync(CancellationToken cancellationToken)
    {
        await Transport.Output.FlushAsync(cancellationToken).ConfigureAwait(false);
        if (_stream is not null) await _stream.ShutdownAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Flushes what was written, sends TLS close_notify and closes the socket, waiting at most 5 s
    /// for a peer that stopped reading. End the read loop first (cancel its token): the pipe must
    /// not be completed while a read is pending.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        using (var timeout = new CancellationTokenSource(CloseTimeout))
        {
            try
            {
                await Transport.Output.FlushAsync(timeout.Token).ConfigureAwait(false);
                if (_stream is not null) await _stream.ShutdownAsync().WaitAsync(timeout.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (IsTeardownNoise(ex))
            {
                // The peer is gone or stuck; closing the socket below is all that is left to do.
            }
        }
        try { _socket?.Shutdown(SocketShutdown.Both); }
        catch (Exception ex) when (IsTeardownNoise(ex)) { }
        _socket?.Dispose();
        if (_stream is not null) await _stream.DisposeAsync().ConfigureAwait(false);
        // The socket is gone, so completing cannot block on a flush any more.
        try { await Transport.Output.CompleteAsync().ConfigureAwait(false); }
        catch (Exception ex) when (IsTeardownNoise(ex)) { }
        try { await Transport.Input.CompleteAsync().ConfigureAwait(false); }
        catch (Exception ex) when (IsTeardownNoise(ex)) { }
    }

    /// <summary>The exceptions a connection going away (or being closed here) throws: nothing to report.</summary>
    public static bool IsTeardownNoise(Exception ex) =>
        ex is IOException or SocketException or ObjectDisposedException or OperationCanceledException
            or AuthenticationException or InvalidOperationException;

    private sealed record DuplexPipe(PipeReader Input, PipeWriter Output) : IDuplexPipe;
}
