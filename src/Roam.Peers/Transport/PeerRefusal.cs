namespace Roam.Peers.Transport;

/// <summary>Why the listener closed an incoming connection before it became a <see cref="PeerConnection"/>.</summary>
public enum PeerRefusal
{
    /// <summary>The client presented no certificate.</summary>
    NoCertificate,
    /// <summary>The client's certificate fingerprint is not in the trust store.</summary>
    UntrustedCertificate,
    /// <summary>No TLS 1.3 session came of it: plain TCP bytes, an older TLS version, a broken handshake, no ALPN.</summary>
    TlsFailed,
    /// <summary>TLS and Hello were not done within the handshake timeout.</summary>
    HandshakeTimeout,
    /// <summary>TLS succeeded but the Hello exchange failed (bad frame, no common version, connection lost).</summary>
    HelloFailed,
    /// <summary>Too many handshakes were already in progress.</summary>
    Busy,
}
