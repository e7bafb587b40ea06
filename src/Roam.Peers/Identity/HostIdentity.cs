using System.Net.Security;
using System.Runtime.Versioning;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Roam.Storage.Volumes;

namespace Roam.Peers.Identity;

/// <summary>
/// This host's identity on the peer protocol: an ECDSA P-256 key and a self-signed certificate,
/// kept in DATA_DIR/identity/host.pem (the certificate and the PKCS#8 key in one PEM file, mode
/// 0600, in a 0700 directory). One file means one atomic replace: a crash leaves either no identity
/// or a whole one, never a key without its certificate. Peers pin the certificate's
/// <see cref="Fingerprint"/>, so the file must survive as long as the host should stay trusted.
/// Not synchronised across processes: roamd's <see cref="DataDirLock"/> keeps one per data dir.
/// </summary>
public sealed class HostIdentity : IDisposable
{
    public const string DirectoryName = "identity";
    public const string FileName = "host.pem";

    /// <summary>Long enough never to matter: peers pin the certificate itself, not a CA's promise about it.</summary>
    public static readonly TimeSpan Validity = TimeSpan.FromDays(365 * 100);

    private const UnixFileMode KeyFileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode DirectoryMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const string ServerAuthOid = "1.3.6.1.5.5.7.3.1";
    private const string ClientAuthOid = "1.3.6.1.5.5.7.3.2";

    private readonly Lazy<SslStreamCertificateContext> _context;

    private HostIdentity(X509Certificate2 certificate, string path, bool created)
    {
        Certificate = certificate;
        Path = path;
        WasCreated = created;
        Name = certificate.GetNameInfo(X509NameType.SimpleName, forIssuer: false);
        Fingerprint = CertificateFingerprint.Of(certificate);
        // offline: the chain of a self-signed certificate is itself; never go looking for it on the network.
        _context = new(() => SslStreamCertificateContext.Create(certificate, additionalCertificates: null, offline: true));
    }

    /// <summary>The host name in the certificate, fixed when the identity was created.</summary>
    public string Name { get; }

    /// <summary>The certificate with its private key, ready for SslStream as server or client.</summary>
    public X509Certificate2 Certificate { get; }

    public CertificateFingerprint Fingerprint { get; }

    /// <summary>The identity file.</summary>
    public string Path { get; }

    /// <summary>True when <see cref="LoadOrCreate"/> made a new identity rather than loading one.</summary>
    public bool WasCreated { get; }

    internal SslStreamCertificateContext CertificateContext => _context.Value;

    /// <summary>
    /// Loads the identity of <paramref name="dataDir"/>, creating it on first use with
    /// <paramref name="hostName"/> as its common name. A later load keeps the stored name even if
    /// the host was renamed: the fingerprint peers trust must not change behind their back.
    /// </summary>
    public static HostIdentity LoadOrCreate(string dataDir, string hostName)
    {
        // roamd runs on Linux (its storage calls libc); file modes below are Unix ones.
        if (!OperatingSystem.IsLinux()) throw new PlatformNotSupportedException("host identities are kept with Unix file modes; roamd runs on Linux");
        var directory = System.IO.Path.Combine(dataDir, DirectoryName);
        var path = System.IO.Path.Combine(directory, FileName);
        if (File.Exists(path)) return Load(path);

        ValidateHostName(hostName);
        Directory.CreateDirectory(dataDir);
        DurableFile.CreateDirectory(directory, DirectoryMode);
        var pem = CreatePem(hostName);
        DurableFile.Write(path, Encoding.ASCII.GetBytes(pem), KeyFileMode);
        return new HostIdentity(Import(pem, path), path, created: true);
    }

    [SupportedOSPlatform("linux")]
    private static HostIdentity Load(string path)
    {
        // The key must stay private. Tighten a file someone loosened (a restore from backup, a cp
        // without -p) instead of refusing to start, since refusing would not make the key secret again.
        if ((File.GetUnixFileMode(path) & ~KeyFileMode) != 0) File.SetUnixFileMode(path, KeyFileMode);
        return new HostIdentity(Import(File.ReadAllText(path), path), path, created: false);
    }

    private static string CreatePem(string hostName)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var subject = new X500DistinguishedNameBuilder();
        subject.AddCommonName(hostName);
        var request = new CertificateRequest(subject.Build(), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: false, hasPathLengthConstraint: false, 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, critical: true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(ServerAuthOid), new Oid(ClientAuthOid)], critical: false));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, critical: false));
        if (Uri.CheckHostName(hostName) == UriHostNameType.Dns)
        {
            var san = new SubjectAlternativeNameBuilder();
            san.AddDnsName(hostName);
            request.CertificateExtensions.Add(san.Build());
        }
        // A day back so a peer whose clock is behind does not see a certificate from the future.
        var notBefore = DateTimeOffset.UtcNow.AddDays(-1);
        using var certificate = request.CreateSelfSigned(notBefore, notBefore + Validity);
        return certificate.ExportCertificatePem() + "\n" + key.ExportPkcs8PrivateKeyPem() + "\n";
    }

    private static X509Certificate2 Import(string pem, string path)
    {
        try
        {
            using var fromPem = X509Certificate2.CreateFromPem(pem, pem);
            if (fromPem.GetECDsaPublicKey() is null)
                throw new CryptographicException("the certificate's key is not ECDSA");
            // A certificate joined to its key in memory (CreateFromPem, CopyWithPrivateKey) holds an
            // ephemeral key that SslStream cannot always use as a server certificate. A round trip
            // through PKCS#12 gives it a key the TLS stack can load on every platform.
            var pkcs12 = fromPem.Export(X509ContentType.Pkcs12);
            try
            {
                return X509CertificateLoader.LoadPkcs12(pkcs12, password: null);
            }
            finally
            {
                CryptographicOperations.ZeroMemory(pkcs12);
            }
        }
        catch (CryptographicException ex)
        {
            throw new InvalidDataException(
                $"the host identity {path} is unreadable ({ex.Message}). Move it away to create a new identity; every peer must then trust the new fingerprint.", ex);
        }
    }

    private static void ValidateHostName(string hostName)
    {
        if (string.IsNullOrWhiteSpace(hostName) || hostName.Any(char.IsControl)
            || Encoding.UTF8.GetByteCount(hostName) > Protocol.PeerProtocol.MaxHostNameLength)
            throw new ArgumentException($"'{hostName}' is not a usable host name (1 to {Protocol.PeerProtocol.MaxHostNameLength} bytes, no control characters)", nameof(hostName));
    }

    public void Dispose() => Certificate.Dispose();
}
