using System.Security.Cryptography;
using System.Text.Json;
using Roam.Peers.Identity;
using Roam.Replication.Tests.Support;
using Roam.Peers.Trust;

namespace Roam.Replication.Tests;

public sealed class TrustStoreTests : IDisposable
{
    private readonly TestDirectory _dir = new();

    private static string Fp(string seed) => CertificateFingerprint.FromHash(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(seed))).ToString();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void A_new_store_is_empty_and_writes_nothing()
    {
        var store = TrustStore.Open(_dir.Path);
        Assert.Empty(store.List());
        Assert.False(File.Exists(Path.Combine(_dir.Path, "peers.json")));
    }

    [Fact]
    public void Added_peers_are_listed_found_and_persisted()
    {
        var store = TrustStore.Open(_dir.Path);
        var laptop = store.Add("laptop", "192.168.1.20:10810", Fp("laptop"));
        store.Add("desk", "desk.home.arpa:10810", Fp("desk"));
        store.Add("v6", "[fd00::2]:7000", Fp("v6"));

        Assert.Equal(["desk", "laptop", "v6"], store.List().Select(p => p.Name));
        Assert.Same(laptop, store.Find("LAPTOP"));
        Assert.Same(laptop, store.FindByFingerprint(CertificateFingerprint.Parse(Fp("laptop"))));
        Assert.Null(store.FindByFingerprint(CertificateFingerprint.Parse(Fp("stranger"))));
        Assert.Equal(new PeerAddress("192.168.1.20", 10810), laptop.Address);

        var reopened = TrustStore.Open(_dir.Path);
        Assert.Equal(store.List(), reopened.List());
        Assert.Equal(new PeerAddress("fd00::2", 7000), reopened.Find("v6")!.Address);
        Assert.Equal("[fd00::2]:7000", reopened.Find("v6")!.Address.ToString());
    }

    [Fact]
    public void The_file_is_plain_json_a_person_can_read()
    {
        var store = TrustStore.Open(_dir.Path);
        store.Add("laptop", "10.0.0.2:10810", Fp("laptop"));

        using var json = JsonDocument.Parse(File.ReadAllText(store.Path));
        var peer = json.RootElement.GetProperty("peers")[0];
        Assert.Equal("laptop", peer.GetProperty("name").GetString());
        Assert.Equal("10.0.0.2:10810", peer.GetProperty("address").GetString());
        Assert.Equal(Fp("laptop"), peer.GetProperty("fingerprint").GetString());
        Assert.False(File.Exists(store.Path + ".tmp"));
    }

    [Fact]
    public void Removed_peers_are_gone_after_reopening()
    {
        var store = TrustStore.Open(_dir.Path);
        store.Add("laptop", "10.0.0.2:10810", Fp("laptop"));
        store.Add("desk", "10.0.0.3:10810", Fp("desk"));

        Assert.True(store.Remove("Laptop"));
        Assert.False(store.Remove("laptop"));
        Assert.Null(store.FindByFingerprint(CertificateFingerprint.Parse(Fp("laptop"))));
        Assert.Equal(["desk"], TrustStore.Open(_dir.Path).List().Select(p => p.Name));
    }

    [Theory]
    [InlineData("laptop", "10.0.0.9:1", "other", TrustStoreError.DuplicateName)]
    [InlineData("LAPTOP", "10.0.0.9:1", "other", TrustStoreError.DuplicateName)]
    [InlineData("second", "10.0.0.9:1", "laptop", TrustStoreError.DuplicateFingerprint)]
    [InlineData("", "10.0.0.9:1", "other", TrustStoreError.InvalidName)]
    [InlineData("-dash", "10.0.0.9:1", "other", TrustStoreError.InvalidName)]
    [InlineData("has space", "10.0.0.9:1", "other", TrustStoreError.InvalidName)]
    [InlineData("ok", "10.0.0.9", "other", TrustStoreError.InvalidAddress)]
    [InlineData("ok", "10.0.0.9:", "other", TrustStoreError.InvalidAddress)]
    [InlineData("ok", "10.0.0.9:0", "other", TrustStoreError.InvalidAddress)]
    [InlineData("ok", "10.0.0.9:65536", "other", TrustStoreError.InvalidAddress)]
    [InlineData("ok", "10.0.0.9:http", "other", TrustStoreError.InvalidAddress)]
    [InlineData("ok", "fd00::2:10810", "other", TrustStoreError.InvalidAddress)]
    [InlineData("ok", "[not-v6]:10810", "other", TrustStoreError.InvalidAddress)]
    [InlineData("ok", "bad_host!:10810", "other", TrustStoreError.InvalidAddress)]
    [InlineData("ok", "", "other", TrustStoreError.InvalidAddress)]
    public void Bad_or_conflicting_peers_are_refused_and_nothing_changes(string name, string address, string fingerprintSeed, TrustStoreError error)
    {
        var store = TrustStore.Open(_dir.Path);
        store.Add("laptop", "10.0.0.2:10810", Fp("laptop"));
        var before = File.ReadAllText(store.Path);

        var ex = Assert.Throws<TrustStoreException>(() => store.Add(name, address, Fp(fingerprintSeed)));
        Assert.Equal(error, ex.Error);
        Assert.False(string.IsNullOrWhiteSpace(ex.Message));
        Assert.Single(store.List());
        Assert.Equal(before, File.ReadAllText(store.Path));
    }

    [Theory]
    [InlineData("")]
    [InlineData("SHA256:short")]
    [InlineData("not a fingerprint")]
    public void Invalid_fingerprints_are_refused(string fingerprint)
    {
        var store = TrustStore.Open(_dir.Path);
        var ex = Assert.Throws<TrustStoreException>(() => store.Add("laptop", "10.0.0.2:10810", fingerprint));
        Assert.Equal(TrustStoreError.InvalidFingerprint, ex.Error);
        Assert.Empty(store.List());
    }

    [Theory]
    [InlineData("{ not json")]
    [InlineData("{\"version\": 2, \"peers\": []}")]
    [InlineData("{\"version\": 1, \"peers\": [{\"name\": \"a\", \"address\": \"nope\", \"fingerprint\": \"x\"}]}")]
    public void An_unreadable_peers_file_is_an_error_not_an_empty_store(string content)
    {
        File.WriteAllText(Path.Combine(_dir.Path, "peers.json"), content);
        var ex = Assert.Throws<TrustStoreException>(() => TrustStore.Open(_dir.Path));
        Assert.Equal(TrustStoreError.Corrupt, ex.Error);
    }

    [Fact]
    public void Concurrent_adds_and_removes_all_land_in_the_file()
    {
        var store = TrustStore.Open(_dir.Path);
        Parallel.For(0, 40, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
        {
            store.Add($"peer{i}", $"10.0.0.{i + 1}:10810", Fp($"peer{i}"));
            if (i % 2 == 0) Assert.True(store.Remove($"peer{i}"));
        });

        var expected = Enumerable.Range(0, 40).Where(i => i % 2 == 1).Select(i => $"peer{i}").Order(StringComparer.OrdinalIgnoreCase);
        Assert.Equal(expected, store.List().Select(p => p.Name));
        Assert.Equal(expected, TrustStore.Open(_dir.Path).List().Select(p => p.Name));
    }
}
