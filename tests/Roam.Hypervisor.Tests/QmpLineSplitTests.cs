using System.Buffers;
using System.Text;
using Roam.Hypervisor.Qmp;
using Roam.Testing;

namespace Roam.Hypervisor.Tests;

public class QmpLineSplitTests
{
    private const string Input = "{\"return\": {}, \"id\": 1}\n{\"event\": \"STOP\"}\r\n{\"partial\":";

    [Fact]
    public void Whole_buffer_splits_into_complete_lines_and_keeps_the_partial_tail() =>
        AssertSplits(new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(Input)));

    [Fact]
    public void One_segment_per_byte_splits_the_same_way() =>
        AssertSplits(Sequences.SegmentPerByte(Encoding.UTF8.GetBytes(Input)));

    private static void AssertSplits(ReadOnlySequence<byte> buffer)
    {
        var lines = new List<string>();
        while (QmpClient.TryReadLine(ref buffer, out var line)) lines.Add(Encoding.UTF8.GetString(line.ToArray()));
        Assert.Equal(["{\"return\": {}, \"id\": 1}", "{\"event\": \"STOP\"}\r"], lines);
        Assert.Equal("{\"partial\":", Encoding.UTF8.GetString(buffer.ToArray()));
    }
}
