using Roam.Peers.Protocol;
using Roam.Replication.Protocol;

namespace Roam.Replication.Tests;

public sealed class Crc32CTests
{
    [Theory]
    [InlineData("", 0x00000000u)]
    [InlineData("123456789", 0xE3069283u)]                                   // the CRC-32C check value
    [InlineData("The quick brown fox jumps over the lazy dog", 0x22620404u)]
    public void Matches_the_published_crc32c_values(string text, uint expected) =>
        Assert.Equal(expected, Crc32C.Compute(System.Text.Encoding.ASCII.GetBytes(text)));

    [Fact]
    public void Incremental_over_any_split_equals_one_pass()
    {
        var data = new byte[1000];
        new Random(7).NextBytes(data);
        uint whole = Crc32C.Compute(data);
        foreach (int split in new[] { 1, 3, 7, 8, 9, 500, 999 })
        {
            uint state = Crc32C.Append(Crc32C.Append(Crc32C.Seed, data.AsSpan(0, split)), data.AsSpan(split));
            Assert.Equal(whole, Crc32C.Finish(state));
        }
    }
}
