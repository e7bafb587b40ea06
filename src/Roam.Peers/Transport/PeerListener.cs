using System.Collections.Concurrent;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Roam.Peers.Identity;
using Roam.Peers.Protocol;
using Roam.Peers.Trust;

namespace Roam.Peers.Transport;

/// <summary>
/// Accepts peer connections. Each TCP connection runs its handshake on its own (TLS 1.3 only, a
/// client certificate required and accepted only if its fingerprint is in the <see cref="TrustStore"/>,
/// then Hello), bounded by <see cref="PeerListenerOptions.HandshakeTimeout"/>. Only connections that
/// pass reach <see cref="AcceptConnectionAsync"/>; every other one is logged with its
/// <see cref="PeerRefusal"/> and closed before an application byte is read. The shape is
/// QuicListener's: handshakes in the background, finished connections queued for the caller.
/// </summary>
public sealed class PeerListener : IAsyncDisposable
{
    private readonly HostIdentity _identity;
    private readonly TrustStore _trust;
    private readonly PeerListenerOptions _options;
    private readonly ILogger _logger;
    private readonly Socket _socket;
    private readonly string _endpoint;
    private readonly Channel<PeerConnection> _ready;
    private readonly CancellationTokenSource _stopping = new();
    private readonly SemaphoreSlim _handshakeSlots;
    private readonly ConcurrentDictionary<long, Task> _handshakes = new();
    private readonly Task _acceptLoop;
    private long _lastId;
    private int _disposed;

    private PeerListener(Socket socket, HostIdentity identity, TrustStore trust, PeerListenerOptions options, ILogger logger)
    {
        _socket = socket;
        _identity = identity;
        _trust = trust;
        _options = options;
        _logger = logger;
        LocalEndPoint = (IPEndPoint)socket.LocalEndPoint!;
        _endpoint = LocalEndPoint.ToString();
        _handshakeSlots = new SemaphoreSlim(options.MaxPendingHandshakes);
        _ready = Channel.CreateBounded<PeerConnection>(new BoundedChannelOptions(options.AcceptQueueLength) { SingleWriter = false });
        _acceptLoop = AcceptLoopAsync();
    }

    /// <summary>The bound endpoint (with the actual port when port 0 was asked for).</summary>
    public IPEndPoint LocalEndPoint { get; }

    /// <summary>Binds and starts accepting; a bind failure (address in use) throws SocketException here.</summary>
    public static PeerListener Start(HostIdentity identity, TrustStore trust, PeerListenerOptions options, ILogger? logger = null)
    {
        var socket = new Socket(options.EndPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            if (options.EndPoint.AddressFamily == AddressFamily.InterNetworkV6 && options.EndPoint.Address.Equals(IPAddress.IPv6Any))
                socket.DualMode = true;
            socket.Bind(options.EndPoint);
            socket.Listen(128);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        var listener = new PeerListener(socket, identity, trust, options, logger ?? NullLogger.Instance);
        Log.Listening(listener._logger, listener._endpoint, identity.Name, identity.Fingerprint.ToString());
        return listener;
    }

    /// <summary>The next authenticated connection. Throws ObjectDisposedException once the listener is disposed.</summary>
    public async ValueTask<PeerConnection> AcceptConnectionAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            return await _ready.Reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (ChannelClosedException)
        {
            throw new ObjectDisposedException(nameof(PeerListener));
        }
    }

    private async Task AcceptLoopAsync()
    {
        await Task.Yield();
        var stopping = _stopping.Token;
        while (!stopping.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _socket.AcceptAsync(stopping).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException)
            {
                break;
            }
            catch (SocketException ex)
            {
                // EMFILE and friends: say so, breathe, keep serving the connections that fit.
                Log.AcceptFailed(_logger, _endpoint, ex.Message);
                try { await Task.Delay(100, stopping).ConfigureAwait(false); }
                catch (OperationCanceledException) { break; }
                continue;
            }

            long id = Interlocked.Increment(ref _lastId);
            string remote = socket.RemoteEndPoint?.ToString() ?? "?";
            if (!_handshakeSlots.Wait(0))
            {
                Log.Refused(_logger, id, remote, PeerRefusal.Busy, "-", $"{_options.MaxPendingHandshakes} handshakes already in progress");
                socket.Dispose();
                continue;
            }
            var handshake = HandshakeAsync(socket, id, remote);
            _handshakes[id] = handshake;
            _ = handshake.ContinueWith(_ => _handshakes.TryRemove(id, out Task? _), CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
    }

    private async Task HandshakeAsync(Socket socket, long id, string remote)
    {
        await Task.Yield();
        var state = new ClientCheck(_trust);
        // Owned here until a PeerConnection takes them; the finally closes whatever is still owned.
        SslStream? stream = null;
        IDuplexPipe? transport = null;
        bool handedOver = false;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
        timeout.CancelAfter(_options.HandshakeTimeout);
        try
        {
            Log.Accepted(_logger, id, remote);
            socket.NoDelay = true;
            stream = new SslStream(new NetworkStream(socket, ownsSocket: true), leaveInnerStreamOpen: false);
            await stream.AuthenticateAsServerAsync(PeerTls.Server(_identity, state.Validate), timeout.Token).ConfigureAwait(false);
            Debug.Assert(state.Peer is not null && state.Fingerprint is not null, "the validation callback accepted a client without naming its peer");
            Debug.Assert(stream.SslProtocol == SslProtocols.Tls13, "TLS 1.3 is the only protocol enabled");
            if (stream.NegotiatedApplicationProtocol != PeerTls.Alpn)
            {
                Refuse(id, remote, PeerRefusal.TlsFailed, state, "the client did not offer ALPN " + PeerProtocol.ApplicationProtocol);
                return;
            }

            transport = PeerConnection.CreateTransport(stream);
            var (version, hostName) = await PeerHandshake.ServerAsync(transport, _identity.Name, timeout.Token).ConfigureAwait(false);
            var connection = new PeerConnection(state.Peer.Name, hostName, state.Fingerprint.Value, version, socket.RemoteEndPoint, transport, stream, socket);
            handedOver = true;
            Log.PeerAccepted(_logger, id, state.Peer.Name, hostName, remote, version);
            try
            {
                await _ready.Writer.WriteAsync(connection, _stopping.Token).ConfigureAwait(false);
            }
            catch
            {
                await connection.DisposeAsync().ConfigureAwait(false);
                throw;
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or ChannelClosedException && _stopping.IsCancellationRequested)
        {
            // Shutting down: nothing to report about this connection.
        }
        catch (OperationCanceledException)
        {
            Refuse(id, remote, PeerRefusal.HandshakeTimeout, state, $"no handshake within {_options.HandshakeTimeout.TotalSeconds:0.#} s");
        }
        catch (PeerProtocolException ex)
        {
            Refuse(id, remote, PeerRefusal.HelloFailed, state, $"{ex.Rejection}: {ex.Message}");
        }
        catch (Exception ex) when (ex is AuthenticationException or IOException or SocketException or ObjectDisposedException)
        {
            var refusal = state.Refusal ?? (transport is null ? PeerRefusal.TlsFailed : PeerRefusal.HelloFailed);
            Refuse(id, remote, refusal, state, ex.InnerException is { } inner ? $"{ex.Message} ({inner.Message})" : ex.Message);
        }
        finally
        {
            if (!handedOver)
            {
                // Socket first: with it closed, completing the writer cannot block on a stuck client.
                socket.Dispose();
                if (stream is not null) await stream.DisposeAsync().ConfigureAwait(false);
                if (transport is not null) await CompleteQuietlyAsync(transport).ConfigureAwait(false);
            }
            _handshakeSlots.Release();
        }
    }

    internal static async ValueTask CompleteQuietlyAsync(IDuplexPipe transport)
    {
        try { await transport.Output.CompleteAsync().ConfigureAwait(false); }
        catch (Exception ex) when (PeerConnection.IsTeardownNoise(ex)) { }
        try { await transport.Input.CompleteAsync().ConfigureAwait(false); }
        catch (Exception ex) when (PeerConnection.IsTeardownNoise(ex)) { }
    }

    private void Refuse(long id, string remote, PeerRefusal refusal, ClientCheck state, string detail) =>
        Log.Refused(_logger, id, remote, refusal, state.Fingerprint?.ToString() ?? "-", detail);

    /// <summary>
    /// Decides on the client's certificate during the handshake and remembers why. Chain errors are
    /// ignored on purpose: every certificate is self-signed, and the pinned fingerprint is the trust.
    /// </summary>
    private sealed class ClientCheck(TrustStore trust)
    {
        public PeerRefusal? Refusal { get; private set; }
        public CertificateFingerprint? Fingerprint { get; private set; }
        public TrustedPeer? Peer { get; private set; }

        public bool Validate(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
        {
            if (certificate is null)
            {
                Refusal = PeerRefusal.NoCertificate;
                return false;
            }
            var fingerprint = PeerTls.FingerprintOf(certificate);
            Fingerprint = fingerprint;
            Peer = trust.FindByFingerprint(fingerprint);
            if (Peer is null) Refusal = PeerRefusal.UntrustedCertificate;
            return Peer is not null;
        }
    }

    /// <summary>Stops accepting, ends handshakes in progress and closes connections nobody accepted.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        await _stopping.CancelAsync().ConfigureAwait(false);
        _socket.Dispose();
        await _acceptLoop.ConfigureAwait(false);
        await Task.WhenAll(_handshakes.Values).ConfigureAwait(false);
        _ready.Writer.TryComplete();
        while (_ready.Reader.TryRead(out var unclaimed)) await unclaimed.DisposeAsync().ConfigureAwait(false);
        _stopping.Dispose();
        _handshakeSlots.Dispose();
        Log.Stopped(_logger, _endpoint);
    }
}
