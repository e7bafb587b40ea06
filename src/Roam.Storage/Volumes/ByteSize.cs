using System.Globalization;

namespace Roam.Storage.Volumes;

/// <summary>Sizes as people type them: 512, 64K, 10M, 10G, 2T (binary multiples; "10GiB" and "10GB" mean the same).</summary>
public static class ByteSize
{
    public static bool TryParse(string? text, out long bytes)
    {
        bytes = 0;
        if (string.IsNullOrWhiteSpace(text)) return false;
        var s = text.Trim();
        if (s.EndsWith("iB", StringComparison.OrdinalIgnoreCase)) s = s[..^2];
        else if (s.Length > 1 && (s[^1] is 'B' or 'b') && char.IsLetter(s[^2])) s = s[..^1];
        int shift = char.ToUpperInvariant(s[^1]) switch { 'K' => 10, 'M' => 20, 'G' => 30, 'T' => 40, 'P' => 50, _ => 0 };
        if (shift != 0 || s[^1] is 'B' or 'b') s = s[..^1];
        if (!decimal.TryParse(s, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value) || value < 0) return false;
        var result = value * (1L << shift);
        if (result > long.MaxValue / 2 || result != decimal.Truncate(result)) return false;
        bytes = (long)result;
        return true;
    }

    public static long Parse(string text) =>
        TryParse(text, out var b) ? b : throw new FormatException($"'{text}' is not a size (examples: 512, 64K, 10M, 10G, 2T)");

    public static string Format(long bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
        double v = bytes;
        int u = 0;
        while (v >= 1024 && u < units.Length - 1) { v /= 1024; u++; }
        return u == 0 ? $"{bytes} B" : (v % 1 == 0 ? $"{v:0} {units[u]}" : $"{v:0.##} {units[u]}");
    }
}
