using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Roam.Peers.Identity;
using Roam.Peers.Protocol;

namespace Roam.Peers.Transport;

/// <summary>
/// The one TLS policy of the peer channel, for both ends: TLS 1.3 only, this host's certificate on both sides, ALPN
/// <see cref="PeerProtocol.ApplicationProtocol"/>, no revocation check, no resumption, no renegotiation. The trust is
/// the pinned fingerprint (checked by the callback each side passes in), never a chain: every certificate is self-signed.
/// </summary>
internal static class PeerTls
{
    public static readonly SslApplicationProtocol Alpn = new(PeerProtocol.ApplicationProtocol);

    public static SslServerAuthenticationOptions Server(HostIdentity identity, RemoteCertificateValidationCallback validate) => new()
    {
        ServerCertificateContext = identity.CertificateContext,
        ClientCertificateRequired = true,
        EnabledSslProtocols = SslProtocols.Tls13,
        ApplicationProtocols = [Alpn],
        CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
        // No resumption: every connection presents its certificate again and meets the trust store
        // as it is now, so a removed peer cannot come back on an old session ticket.
        AllowTlsResume = false,
        AllowRenegotiation = false,
        RemoteCertificateValidationCallback = validate,
    };

    public static SslClientAuthenticationOptions Client(HostIdentity identity, string targetHost, RemoteCertificateValidationCallback validate) => new()
    {
        TargetHost = targetHost,
        ClientCertificateContext = identity.CertificateContext,
        EnabledSslProtocols = SslProtocols.Tls13,
        ApplicationProtocols = [Alpn],
        CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
        AllowTlsResume = false,
        AllowRenegotiation = false,
        RemoteCertificateValidationCallback = validate,
    };

    /// <summary>The fingerprint of the certificate the other side presented.</summary>
    public static CertificateFingerprint FingerprintOf(X509Certificate certificate) =>
        certificate is X509Certificate2 c2 ? CertificateFingerprint.Of(c2) : CertificateFingerprint.Of(certificate.GetRawCertData());
}
