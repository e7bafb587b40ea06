using System.Buffers;

namespace Roam.Testing;

/// <summary>
/// Builds multi-segment <see cref="ReadOnlySequence{T}"/>s (Kestrel's ReadOnlySequenceFactory), so a
/// parser is tested on input split at every possible boundary, not only on one contiguous span.
/// </summary>
public static class Sequences
{
    public static ReadOnlySequence<byte> SegmentPerByte(ReadOnlySpan<byte> bytes)
    {
        if (bytes.IsEmpty) return ReadOnlySequence<byte>.Empty;
        var first = new Segment(new[] { bytes[0] }, 0);
        var last = first;
        for (int i = 1; i < bytes.Length; i++) last = last.Append(new[] { bytes[i] });
        return new ReadOnlySequence<byte>(first, 0, last, 1);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
