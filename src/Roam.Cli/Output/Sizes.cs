using System.Globalization;

namespace Roam.Cli.Output;

/// <summary>Byte counts, rates and durations as people read them (binary units: 1 GiB = 1024 MiB).</summary>
internal static class Sizes
{
    private static readonly string[] Units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

    public static string Format(long bytes)
    {
        double value = bytes;
        int unit = 0;
        while (Math.Abs(value) >= 1024 && unit < Units.Length - 1)
        {
            value /= 1024;
            unit++;
        }
        if (unit == 0) return string.Create(CultureInfo.InvariantCulture, $"{bytes} B");
        // One decimal below 10 ("1.0 GiB", "9.5 MiB"), none above ("312 MiB").
        return Math.Abs(value) < 10
            ? string.Create(CultureInfo.InvariantCulture, $"{value:0.0} {Units[unit]}")
            : string.Create(CultureInfo.InvariantCulture, $"{value:0} {Units[unit]}");
    }

    public static string Rate(double bytesPerSecond) => Format((long)bytesPerSecond) + "/s";

    public static string Seconds(double seconds) => seconds < 10
        ? string.Create(CultureInfo.InvariantCulture, $"{seconds:0.0} s")
        : string.Create(CultureInfo.InvariantCulture, $"{seconds:0} s");
}
