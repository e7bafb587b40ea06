using System.Security.Cryptography;
using Roam.Peers.Identity;

namespace Roam.Replication.Tests;

public sealed class FingerprintTests
{
    private static readonly byte[] Hash = SHA256.HashData("roam"u8);
    private static readonly CertificateFingerprint Value = CertificateFingerprint.FromHash(Hash);

    [Fact]
    public void Displays_as_openssh_style_base64_and_parses_back()
    {
        var text = Value.ToString();
        Assert.StartsWith("SHA256:", text);
        Assert.Equal(7 + 43, text.Length);
        Assert.DoesNotContain("=", text);
        Assert.Equal(Value, CertificateFingerprint.Parse(text));
    }

    public static TheoryData<string> Spellings()
    {
        var base64 = Convert.ToBase64String(Hash);
        var hex = Convert.ToHexString(Hash);
        return new TheoryData<string>
        {
            "SHA256:" + base64.TrimEnd('='),
            "sha256:" + base64,
            base64.TrimEnd('='),
            "  SHA256:" + base64.TrimEnd('=') + "\n",
            hex,
            hex.ToLowerInvariant(),
            string.Join(':', Hash.Select(b => b.ToString("X2"))),
            string.Join(':', Hash.Select(b => b.ToString("x2"))),
            "SHA256:" + string.Join(':', Hash.Select(b => b.ToString("X2"))),
            "sha256 Fingerprint=" + string.Join(':', Hash.Select(b => b.ToString("X2"))),
        };
    }

    [Theory]
    [MemberData(nameof(Spellings))]
    public void Parsing_tolerates_case_colons_padding_and_prefixes(string text) =>
        Assert.Equal(Value, CertificateFingerprint.Parse(text));

    [Theory]
    [InlineData("")]
    [InlineData("SHA256:")]
    [InlineData("SHA256:abc")]
    [InlineData("MD5:00112233445566778899aabbccddeeff")]
    [InlineData("00112233445566778899aabbccddeeff00112233445566778899aabbccddee")]        // 31 bytes
    [InlineData("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff00")]    // 33 bytes
    [InlineData("zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")]
    public void Parsing_rejects_what_is_not_a_sha256(string text)
    {
        Assert.False(CertificateFingerprint.TryParse(text, out _));
        Assert.Throws<FormatException>(() => CertificateFingerprint.Parse(text));
    }

    [Fact]
    public void Hex_form_is_colon_separated_upper_case()
    {
        Assert.Equal(string.Join(':', Hash.Select(b => b.ToString("X2"))), Value.ToHex());
        Assert.Equal(Value, CertificateFingerprint.Parse(Value.ToHex()));
    }

    [Fact]
    public void Equality_is_by_value()
    {
        var other = CertificateFingerprint.FromHash(SHA256.HashData("other"u8));
        Assert.Equal(Value, CertificateFingerprint.FromHash(Hash.ToArray()));
        Assert.NotEqual(Value, other);
        Assert.Equal(Value.GetHashCode(), CertificateFingerprint.FromHash(Hash.ToArray()).GetHashCode());
    }
}
