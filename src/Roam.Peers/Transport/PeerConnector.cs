using System.IO.Pipelines;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Roam.Peers.Identity;
using Roam.Peers.Protocol;
using Roam.Peers.Trust;

namespace Roam.Peers.Transport;

/// <summary>
/// Connects to trusted peers by name: TCP to the stored address, TLS 1.3 with this host's
/// certificate as the client certificate, the server accepted only if its certificate's fingerprint
/// is the one stored for that name, then Hello. Every failure is a <see cref="PeerConnectException"/>.
/// </summary>
public sealed class PeerConnector(HostIdentity identity, TrustStore trust, PeerConnectorOptions? options = null, ILogger? logger = null)
{
    private readonly PeerConnectorOptions _options = options ?? new PeerConnectorOptions();
    private readonly ILogger _logger = logger ?? NullLogger.Instance;

    public async Task<PeerConnection> ConnectAsync(string peerName, CancellationToken cancellationToken = default)
    {
        var peer = trust.Find(peerName)
            ?? throw Fail(PeerConnectFailure.UnknownPeer, peerName, "-", $"no trusted peer is named {peerName}");
        var address = peer.Address.ToString();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.Timeout);

        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        SslStream? stream = null;
        IDuplexPipe? transport = null;
        bool handedOver = false;
        var check = new ServerCheck(peer.Fingerprint);
        try
        {
            try
            {
                await socket.ConnectAsync(peer.Address.Host, peer.Address.Port, timeout.Token).ConfigureAwait(false);
            }
            catch (SocketException ex)
            {
                throw Fail(PeerConnectFailure.Unreachable, peer.Name, address, ex.Message, ex);
            }

            stream = new SslStream(new NetworkStream(socket, ownsSocket: true), leaveInnerStreamOpen: false);
            try
            {
                await stream.AuthenticateAsClientAsync(PeerTls.Client(identity, peer.Address.Host, check.Validate), timeout.Token).ConfigureAwait(false);
            }
            catch (AuthenticationException ex) when (check.Actual is { } actual && actual != peer.Fingerprint)
            {
                throw Fail(PeerConnectFailure.ServerCertificateMismatch, peer.Name, address,
                    $"the server presented certificate {actual}, but {peer.Name} is trusted as {peer.Fingerprint}. " +
                    "If that host's identity really changed, remove the peer and add it again with the new fingerprint.", ex);
            }
            catch (Exception ex) when (ex is AuthenticationException or IOException)
            {
                throw Fail(PeerConnectFailure.TlsFailed, peer.Name, address, ex.Message, ex);
            }

            transport = PeerConnection.CreateTransport(stream);
            PeerHandshake.ClientResult result;
            try
            {
                result = await PeerHandshake.ClientAsync(transport, identity.Name, timeout.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is AuthenticationException or IOException)
            {
                // TLS 1.3 finishes the client's side of the handshake before the server has checked the
                // client's certificate, so a server that does not trust this host shows up here, as an
                // alert or a closed connection on the first read.
                throw Refused(peer, address, ex);
            }
            catch (PeerProtocolException ex)
            {
                throw Fail(PeerConnectFailure.ProtocolError, peer.Name, address, $"{ex.Rejection}: {ex.Message}", ex);
            }

            if (result.Error is { } error)
            {
                var failure = error.Code == PeerErrorCode.UnsupportedVersion ? PeerConnectFailure.VersionMismatch : PeerConnectFailure.Refused;
                throw Fail(failure, peer.Name, address, $"the peer answered {error.Code}: {error.Message}");
            }
            if (result.Ack is not { } ack) throw Refused(peer, address, null);

            var connection = new PeerConnection(peer.Name, ack.HostName, peer.Fingerprint, ack.Version, socket.RemoteEndPoint, transport, stream, socket);
            handedOver = true;
            Log.Connected(_logger, peer.Name, address, ack.HostName, ack.Version);
            return connection;
        }
        catch (OperationCanceledException ex) when (!cancellationToken.IsCancellationRequested)
        {
            throw Fail(PeerConnectFailure.Timeout, peer.Name, address, $"no connection within {_options.Timeout.TotalSeconds:0.#} s", ex);
        }
        finally
        {
            if (!handedOver)
            {
                socket.Dispose();
                if (stream is not null) await stream.DisposeAsync().ConfigureAwait(false);
                if (transport is not null) await PeerListener.CompleteQuietlyAsync(transport).ConfigureAwait(false);
            }
        }
    }

    private PeerConnectException Refused(TrustedPeer peer, string address, Exception? inner) =>
        Fail(PeerConnectFailure.Refused, peer.Name, address,
            $"the peer closed the connection during the handshake; it probably does not trust this host. " +
            $"On {peer.Name}, trust this host's fingerprint {identity.Fingerprint}.", inner);

    private PeerConnectException Fail(PeerConnectFailure failure, string peer, string address, string message, Exception? inner = null)
    {
        Log.ConnectFailed(_logger, peer, address, failure, message);
        return new PeerConnectException(failure, peer, $"cannot connect to peer {peer} ({address}): {message}", inner);
    }

    /// <summary>
    /// Accepts exactly the pinned certificate. Name and chain errors are ignored on purpose: the
    /// certificate is self-signed and its name is whatever the peer's host was called.
    /// </summary>
    private sealed class ServerCheck(CertificateFingerprint expected)
    {
        public CertificateFingerprint? Actual { get; private set; }

        public bool Validate(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
        {
            if (certificate is null) return false;
            Actual = PeerTls.FingerprintOf(certificate);
            return Actual == expected;
        }
    }
}
