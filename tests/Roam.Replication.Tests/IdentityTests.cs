using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Roam.Peers.Identity;
using Roam.Replication.Tests.Support;

namespace Roam.Replication.Tests;

[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class IdentityTests
{
    [Fact]
    public void First_use_creates_the_identity_and_later_loads_reuse_it()
    {
        using var dir = new TestDirectory();
        CertificateFingerprint first;
        using (var created = HostIdentity.LoadOrCreate(dir.Path, "alpha"))
        {
            Assert.True(created.WasCreated);
            Assert.Equal("alpha", created.Name);
            first = created.Fingerprint;
        }
        using var loaded = HostIdentity.LoadOrCreate(dir.Path, "renamed-since");
        Assert.False(loaded.WasCreated);
        Assert.Equal(first, loaded.Fingerprint);
        Assert.Equal("alpha", loaded.Name);
        Assert.True(loaded.Certificate.HasPrivateKey);
    }

    [Fact]
    public void Identity_file_is_private_and_holds_a_P256_server_and_client_certificate()
    {
        using var dir = new TestDirectory();
        using var identity = HostIdentity.LoadOrCreate(dir.Path, "alpha");

        Assert.Equal(Path.Combine(dir.Path, "identity", "host.pem"), identity.Path);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(identity.Path));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute,
            File.GetUnixFileMode(Path.GetDirectoryName(identity.Path)!));
        Assert.False(File.Exists(identity.Path + ".tmp"));

        var cert = identity.Certificate;
        Assert.Equal("CN=alpha", cert.Subject);
        Assert.Equal(cert.Subject, cert.Issuer);
        using var key = cert.GetECDsaPrivateKey();
        Assert.NotNull(key);
        Assert.Equal(256, key.KeySize);
        var ekus = cert.Extensions.OfType<X509EnhancedKeyUsageExtension>().Single().EnhancedKeyUsages.Cast<Oid>().Select(o => o.Value).ToHashSet();
        Assert.Contains("1.3.6.1.5.5.7.3.1", ekus);
        Assert.Contains("1.3.6.1.5.5.7.3.2", ekus);
        Assert.True(cert.NotAfter > DateTime.UtcNow.AddYears(50));
        Assert.True(cert.NotBefore < DateTime.UtcNow);
    }

    [Fact]
    public void Fingerprint_is_the_sha256_of_the_der_certificate()
    {
        using var dir = new TestDirectory();
        using var identity = HostIdentity.LoadOrCreate(dir.Path, "alpha");
        var expected = SHA256.HashData(identity.Certificate.RawData);

        Span<byte> actual = stackalloc byte[32];
        identity.Fingerprint.CopyTo(actual);
        Assert.Equal(expected, actual.ToArray());
        Assert.Equal("SHA256:" + Convert.ToBase64String(expected).TrimEnd('='), identity.Fingerprint.ToString());
    }

    [Fact]
    public void A_loosened_key_file_is_tightened_on_load()
    {
        using var dir = new TestDirectory();
        string path;
        using (var identity = HostIdentity.LoadOrCreate(dir.Path, "alpha")) path = identity.Path;
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

        using var _ = HostIdentity.LoadOrCreate(dir.Path, "alpha");
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
    }

    [Fact]
    public void A_damaged_identity_file_is_reported_not_silently_replaced()
    {
        using var dir = new TestDirectory();
        string path;
        using (var identity = HostIdentity.LoadOrCreate(dir.Path, "alpha")) path = identity.Path;
        File.WriteAllText(path, "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n");

        var ex = Assert.Throws<InvalidDataException>(() => HostIdentity.LoadOrCreate(dir.Path, "alpha"));
        Assert.Contains(path, ex.Message);
        Assert.StartsWith("-----BEGIN CERTIFICATE-----\nnot base64", File.ReadAllText(path));
    }

    [Theory]
    [InlineData("")]
    [InlineData("  ")]
    [InlineData("tab\there")]
    public void Unusable_host_names_are_refused(string name)
    {
        using var dir = new TestDirectory();
        Assert.Throws<ArgumentException>(() => HostIdentity.LoadOrCreate(dir.Path, name));
        Assert.False(File.Exists(Path.Combine(dir.Path, "identity", "host.pem")));
    }
}
