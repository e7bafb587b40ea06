using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Roam.Peers.Identity;

/// <summary>
/// The SHA-256 of a certificate's DER bytes: what one host pins for another, as SSH pins host keys.
/// Shown as OpenSSH shows key fingerprints, <c>SHA256:</c> and unpadded base64
/// (<c>SHA256:n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg</c>). <see cref="TryParse"/> also takes
/// 64 hex digits in any case, with or without colons and an optional <c>SHA256:</c> or OpenSSL
/// <c>sha256 Fingerprint=</c> prefix, so the value printed by
/// <c>openssl x509 -noout -fingerprint -sha256</c> can be pasted as it is.
/// </summary>
public readonly record struct CertificateFingerprint
{
    public const int Length = 32;
    public const string Prefix = "SHA256:";

    // 32 bytes as four big-endian words: value equality and hashing come for free, nothing is allocated.
    private readonly ulong _w0, _w1, _w2, _w3;

    private CertificateFingerprint(ReadOnlySpan<byte> hash)
    {
        _w0 = BinaryPrimitives.ReadUInt64BigEndian(hash);
        _w1 = BinaryPrimitives.ReadUInt64BigEndian(hash[8..]);
        _w2 = BinaryPrimitives.ReadUInt64BigEndian(hash[16..]);
        _w3 = BinaryPrimitives.ReadUInt64BigEndian(hash[24..]);
    }

    public static CertificateFingerprint Of(X509Certificate2 certificate) => Of(certificate.RawDataMemory.Span);

    public static CertificateFingerprint Of(ReadOnlySpan<byte> derCertificate)
    {
        Span<byte> hash = stackalloc byte[Length];
        SHA256.HashData(derCertificate, hash);
        return new CertificateFingerprint(hash);
    }

    public static CertificateFingerprint FromHash(ReadOnlySpan<byte> sha256)
    {
        if (sha256.Length != Length) throw new ArgumentException($"a SHA-256 hash is {Length} bytes, not {sha256.Length}", nameof(sha256));
        return new CertificateFingerprint(sha256);
    }

    public void CopyTo(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64BigEndian(destination, _w0);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], _w1);
        BinaryPrimitives.WriteUInt64BigEndian(destination[16..], _w2);
        BinaryPrimitives.WriteUInt64BigEndian(destination[24..], _w3);
    }

    /// <summary><c>SHA256:</c> + base64 without padding (43 characters).</summary>
    public override string ToString()
    {
        Span<byte> hash = stackalloc byte[Length];
        CopyTo(hash);
        return Prefix + Convert.ToBase64String(hash).TrimEnd('=');
    }

    /// <summary>Colon-separated upper-case hex, as OpenSSL prints it.</summary>
    public string ToHex()
    {
        Span<byte> hash = stackalloc byte[Length];
        CopyTo(hash);
        return string.Join(':', hash.ToArray().Select(b => b.ToString("X2", System.Globalization.CultureInfo.InvariantCulture)));
    }

    public static CertificateFingerprint Parse(string text) =>
        TryParse(text, out var fingerprint)
            ? fingerprint
            : throw new FormatException($"'{text}' is not a certificate fingerprint: expected {Prefix} and 43 base64 characters, or 64 hex digits");

    public static bool TryParse([NotNullWhen(true)] string? text, out CertificateFingerprint fingerprint)
    {
        fingerprint = default;
        if (text is null) return false;
        var s = text.AsSpan().Trim();
        const string openSsl = "sha256 Fingerprint=";
        if (s.StartsWith(openSsl, StringComparison.OrdinalIgnoreCase)) s = s[openSsl.Length..].Trim();
        else if (s.StartsWith(Prefix, StringComparison.OrdinalIgnoreCase)) s = s[Prefix.Length..].Trim();

        Span<byte> hash = stackalloc byte[Length];
        if (TryParseHex(s, hash) || TryParseBase64(s, hash))
        {
            fingerprint = new CertificateFingerprint(hash);
            return true;
        }
        return false;
    }

    private static bool TryParseHex(ReadOnlySpan<char> s, Span<byte> hash)
    {
        int n = 0;
        int pending = -1;
        foreach (char c in s)
        {
            if (c == ':') continue;
            int v = HexValue(c);
            if (v < 0 || n == Length) return false;
            if (pending < 0) pending = v;
            else
            {
                hash[n++] = (byte)(pending << 4 | v);
                pending = -1;
            }
        }
        return n == Length && pending < 0;
    }

    private static int HexValue(char c) => c switch
    {
        >= '0' and <= '9' => c - '0',
        >= 'a' and <= 'f' => c - 'a' + 10,
        >= 'A' and <= 'F' => c - 'A' + 10,
        _ => -1,
    };

    private static bool TryParseBase64(ReadOnlySpan<char> s, Span<byte> hash)
    {
        // 32 bytes are 43 base64 characters, plus one '=' when padded.
        if (s.Length == 44 && s[43] == '=') s = s[..43];
        if (s.Length != 43) return false;
        Span<char> padded = stackalloc char[44];
        s.CopyTo(padded);
        padded[43] = '=';
        return Convert.TryFromBase64Chars(padded, hash, out int written) && written == Length;
    }
}
