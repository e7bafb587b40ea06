using System.Buffers;
using System.Buffers.Binary;
using System.Numerics;

namespace Roam.Peers.Protocol;

/// <summary>
/// CRC-32C (Castagnoli), the checksum of iSCSI and ext4. System.IO.Hashing 10.0 only has the IEEE
/// CRC-32, so this uses <see cref="BitOperations.Crc32C(uint, ulong)"/>: the SSE4.2/ARMv8 crc32
/// instruction with a software fallback, incremental across segments and free of allocations,
/// which a hashing object per frame would not be.
/// </summary>
public static class Crc32C
{
    public const uint Seed = 0xFFFFFFFF;

    public static uint Append(uint state, ReadOnlySpan<byte> data)
    {
        while (data.Length >= sizeof(ulong))
        {
            // The instruction consumes the operand's bytes in memory order, which on every
            // supported target is little-endian.
            state = BitOperations.Crc32C(state, BinaryPrimitives.ReadUInt64LittleEndian(data));
            data = data[sizeof(ulong)..];
        }
        foreach (byte b in data) state = BitOperations.Crc32C(state, b);
        return state;
    }

    public static uint Append(uint state, in ReadOnlySequence<byte> data)
    {
        if (data.IsSingleSegment) return Append(state, data.FirstSpan);
        foreach (var segment in data) state = Append(state, segment.Span);
        return state;
    }

    public static uint Finish(uint state) => ~state;

    public static uint Compute(ReadOnlySpan<byte> data) => Finish(Append(Seed, data));
}
