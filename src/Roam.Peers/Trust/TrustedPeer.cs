using Roam.Peers.Identity;

namespace Roam.Peers.Trust;

/// <summary>A host this one trusts: its local name, where to reach it and the certificate it must present.</summary>
public sealed record TrustedPeer(string Name, PeerAddress Address, CertificateFingerprint Fingerprint);
