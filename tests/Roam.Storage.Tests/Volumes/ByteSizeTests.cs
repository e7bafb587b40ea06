using Roam.Storage.Volumes;

namespace Roam.Storage.Tests.Volumes;

public sealed class ByteSizeTests
{
    [Theory]
    [InlineData("512", 512L)]
    [InlineData("0", 0L)]
    [InlineData("64K", 65536L)]
    [InlineData("64k", 65536L)]
    [InlineData("10M", 10L << 20)]
    [InlineData("10G", 10L << 30)]
    [InlineData("10GiB", 10L << 30)]
    [InlineData("10GB", 10L << 30)]
    [InlineData("10gb", 10L << 30)]
    [InlineData("2T", 2L << 40)]
    [InlineData("1P", 1L << 50)]
    [InlineData("1.5K", 1536L)]
    [InlineData("0.5G", 1L << 29)]
    [InlineData("5B", 5L)]
    [InlineData(" 8M ", 8L << 20)]
    public void Parses_what_people_type_as_binary_multiples(string text, long expected)
    {
        Assert.True(ByteSize.TryParse(text, out long bytes));
        Assert.Equal(expected, bytes);
        Assert.Equal(expected, ByteSize.Parse(text));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("abc")]
    [InlineData("K")]
    [InlineData("GiB")]
    [InlineData("-1")]
    [InlineData("-1G")]
    [InlineData("10X")]
    [InlineData("1e3")]
    [InlineData("1.3")]         // not a whole number of bytes
    [InlineData("1.0001K")]
    [InlineData("1,5G")]
    [InlineData("99999P")]      // beyond what a long can hold
    [InlineData("10 G")]
    public void Rejects_anything_else(string? text)
    {
        Assert.False(ByteSize.TryParse(text, out long bytes));
        Assert.Equal(0, bytes);
        Assert.Throws<FormatException>(() => ByteSize.Parse(text!));
    }

    [Theory]
    [InlineData(0L, "0 B")]
    [InlineData(1023L, "1023 B")]
    [InlineData(1024L, "1 KiB")]
    [InlineData(1536L, "1.5 KiB")]
    [InlineData(10L << 20, "10 MiB")]
    [InlineData((10L << 30) + (1L << 29), "10.5 GiB")]
    [InlineData(2L << 40, "2 TiB")]
    [InlineData(3L << 50, "3 PiB")]
    [InlineData(5000L << 50, "5000 PiB")]
    public void Formats_with_the_largest_binary_unit(long bytes, string expected) =>
        Assert.Equal(expected, ByteSize.Format(bytes));

    [Theory]
    [InlineData(512L)]
    [InlineData(64L << 10)]
    [InlineData(3L << 30)]
    [InlineData(1536L)]
    public void Formatted_sizes_parse_back(long bytes) =>
        Assert.Equal(bytes, ByteSize.Parse(ByteSize.Format(bytes).Replace(" ", "")));
}
