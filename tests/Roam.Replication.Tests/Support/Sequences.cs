using System.Buffers;

namespace Roam.Replication.Tests.Support;

/// <summary>Kestrel's ReadOnlySequenceFactory idea: the same bytes whole, and one segment per byte.</summary>
public static class Sequences
{
    public static ReadOnlySequence<byte> Whole(byte[] bytes) => new(bytes);

    public static ReadOnlySequence<byte> SegmentPerByte(byte[] bytes)
    {
        if (bytes.Length == 0) return ReadOnlySequence<byte>.Empty;
        var first = new Segment(new[] { bytes[0] }, 0);
        var last = first;
        for (int i = 1; i < bytes.Length; i++) last = last.Append(new[] { bytes[i] });
        return new ReadOnlySequence<byte>(first, 0, last, 1);
    }

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
