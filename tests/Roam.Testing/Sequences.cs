using System.Buffers;

namespace Roam.Testing;

/// <summary>
/// The same bytes whole, and split into one segment per byte. Builds multi-segment <see cref="ReadOnlySequence{T}"/>s (Kestrel's ReadOnlySequenceFactory), so a
/// parser is tested on input split at every possible boundary, not only on one contiguous span.
/// </summary>
public static class Sequences
{
    public static ReadOnlySequence<byte> Whole(byte[] bytes) => new(bytes);

    public static ReadOnlySequence<byte> SegmentPerByte(ReadOnlySpan<byte> bytes)
    {
        if (bytes.IsEmpty) return ReadOnlySequence<byte>.Empty;
        var first = new Segment(new[] { bytes[0] }, 0);
        var last = first;
        for (int i = 1; i < bytes.Length; i++) last = last.Append(new[] { bytes[i] });
        return new ReadOnlySequence<byte>(first, 0, last, 1);
    }

    /// <summary>Both forms, named, for a test that must give the same answer on either.</summary>
    public static IEnumerable<(string Name, ReadOnlySequence<byte> Sequence)> Both(byte[] bytes)
    {
        yield return ("whole", Whole(bytes));
        yield return ("segment per byte", SegmentPerByte(bytes));
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
