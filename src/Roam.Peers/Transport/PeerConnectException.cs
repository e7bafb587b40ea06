namespace Roam.Peers.Transport;

public enum PeerConnectFailure
{
    /// <summary>No trusted peer has that name.</summary>
    UnknownPeer,
    /// <summary>No TCP connection: name resolution failed, nothing listens, no route.</summary>
    Unreachable,
    Timeout,
    /// <summary>The TLS 1.3 handshake failed for a reason other than the server's certificate.</summary>
    TlsFailed,
    /// <summary>The server presented a certificate whose fingerprint is not the one trusted for the peer.</summary>
    ServerCertificateMismatch,
    /// <summary>The server ended the connection during the handshake, which it does when it does not trust this host.</summary>
    Refused,
    VersionMismatch,
    ProtocolError,
}

/// <summary>A connection to a peer could not be established; callers map <see cref="Failure"/>, not the message.</summary>
public sealed class PeerConnectException(PeerConnectFailure failure, string peerName, string message, Exception? inner = null)
    : Exception(message, inner)
{
    public PeerConnectFailure Failure { get; } = failure;
    public string PeerName { get; } = peerName;
}
