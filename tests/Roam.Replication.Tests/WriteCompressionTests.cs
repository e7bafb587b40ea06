using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using CsCheck;
using Roam.Peers.Protocol;
using Roam.Replication.Protocol;
using Roam.Replication.Tests.Support;

namespace Roam.Replication.Tests;

/// <summary>The LZ4 form of a Write's data: round trips, the "does it pay" rule, and malformed input refused.</summary>
public sealed class WriteCompressionTests
{
    /// <summary>Data made of a few repeated words: what file systems, logs and zeroed-then-written blocks look like.</summary>
    private static readonly Gen<byte[]> Compressible =
        Gen.Select(Gen.Int[WriteCompression.MinLength, 256 * 1024], Gen.Int[0, 1000], (length, seed) =>
        {
            var words = new[] { "roam ", "volume ", "block ", "\n", "0000", "record " };
            var random = new Random(seed);
            var text = new StringBuilder();
            while (text.Length < length) text.Append(words[random.Next(words.Length)]);
            return Encoding.ASCII.GetBytes(text.ToString(0, length));
        });

    private static byte[] Compress(byte[] data)
    {
        var buffer = new byte[WriteCompression.BufferLength(data.Length)];
        int length = WriteCompression.TryCompress(data, buffer);
        Assert.True(length > 0, "compressible data did not compress");
        return buffer[..length];
    }

    private static byte[] Decompress(ReadOnlySequence<byte> compressed)
    {
        var output = new byte[WriteCompression.DecodedLength(compressed)];
        WriteCompression.Decompress(compressed, output);
        return output;
    }

    [Fact]
    public void Compressible_data_round_trips_whole_and_in_one_byte_segments() =>
        Gen.Select(Compressible, Gen.Bool).Sample((data, perByte) =>
        {
            var compressed = Compress(data);
            Assert.True(compressed.Length <= data.Length - data.Length / 8);
            Assert.Equal(data, Decompress(perByte ? Sequences.SegmentPerByte(compressed) : Sequences.Whole(compressed)));
        }, iter: 100);

    [Fact]
    public void Random_data_and_small_writes_are_sent_as_they_are()
    {
        var random = new byte[64 * 1024];
        new Random(7).NextBytes(random);
        var buffer = new byte[WriteCompression.BufferLength(random.Length)];
        Assert.Equal(-1, WriteCompression.TryCompress(random, buffer));
        var small = new byte[WriteCompression.MinLength - 1];   // zeros, but too small to bother
        Assert.Equal(-1, WriteCompression.TryCompress(small, new byte[WriteCompression.BufferLength(small.Length)]));
    }

    [Theory]
    [InlineData(0u)]
    [InlineData((uint)PeerProtocol.MaxWriteDataLength + 1)]
    [InlineData(uint.MaxValue)]
    public void A_stated_length_out_of_range_is_refused_before_decoding(uint stated)
    {
        var frame = Compress(new byte[16 * 1024]);
        BinaryPrimitives.WriteUInt32BigEndian(frame, stated);
        Assert.Throws<PeerProtocolException>(() => WriteCompression.DecodedLength(Sequences.Whole(frame)));
    }

    [Fact]
    public void Damaged_truncated_or_lying_blocks_are_refused() =>
        Gen.Select(Compressible, Gen.Int[0, 2]).Sample((data, damage) =>
        {
            var frame = Compress(data);
            switch (damage)
            {
                case 0: frame = frame[..(frame.Length / 2)]; break;                                            // cut short
                case 1: BinaryPrimitives.WriteUInt32BigEndian(frame, (uint)data.Length + 1); break;             // claims a byte more
                default: BinaryPrimitives.WriteUInt32BigEndian(frame, (uint)Math.Max(1, data.Length - 100)); break; // claims fewer
            }
            Assert.Throws<PeerProtocolException>(() => Decompress(Sequences.Whole(frame)));
        }, iter: 50);

    [Fact]
    public void Too_short_to_hold_a_length_is_refused() =>
        Assert.Throws<PeerProtocolException>(() => WriteCompression.DecodedLength(Sequences.Whole([0, 0, 1])));
}
