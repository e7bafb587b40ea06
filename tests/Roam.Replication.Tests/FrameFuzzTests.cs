using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using Roam.Peers.Protocol;
using Roam.Replication.Protocol;
using Roam.Replication.Tests.Support;

namespace Roam.Replication.Tests;

/// <summary>
/// Bounded fuzz: valid, mutated and random byte streams from a peer, through an in-memory pipe in
/// random chunks, into the reader loop a connection runs. Every stream must end in whole frames, a
/// truncation at end of stream, or a <see cref="PeerProtocolException"/>; never another exception,
/// never a hang, and the reader never waits while holding more than one maximum frame.
/// Fixed seeds, so a failure names its iteration; ROAM_FUZZ_ITERATIONS runs more.
/// </summary>
public sealed class FrameFuzzTests
{
    private const int MaxPayload = 8 * 1024;
    private const int BaseSeed = 0x5EED;

    private static int Iterations =>
        int.TryParse(Environment.GetEnvironmentVariable("ROAM_FUZZ_ITERATIONS"), out int n) && n > 0 ? n : 300;

    private enum Mutation { None, FlipBits, Truncate, Overwrite, Insert, RandomBytes, BadLength }

    private sealed record Outcome(int Frames, PeerRejection? Rejection, bool Truncated);

    [Fact]
    public async Task Random_and_mutated_streams_end_in_frames_truncation_or_a_protocol_error()
    {
        var rejections = new HashSet<PeerRejection>();
        int clean = 0;
        for (int i = 0; i < Iterations; i++)
        {
            var rng = new Random(BaseSeed + i);
            var mutation = (Mutation)rng.Next(Enum.GetValues<Mutation>().Length);
            var (input, frameCount) = ValidStream(rng);
            input = Mutate(input, mutation, rng);

            Outcome outcome;
            try
            {
                outcome = await RunAsync(input, rng).WaitAsync(TimeSpan.FromSeconds(10));
            }
            catch (Exception ex)
            {
                throw new Xunit.Sdk.XunitException($"iteration {i} (seed {BaseSeed + i}, {mutation}, {input.Length} bytes): {ex}");
            }

            if (mutation == Mutation.None)
                Assert.Equal(new Outcome(frameCount, null, false), outcome);
            if (outcome.Rejection is { } r) rejections.Add(r);
            else if (!outcome.Truncated) clean++;
        }
        // Both sides of the reader must have been exercised, and more than one kind of rejection.
        Assert.True(clean > 0, "no stream was read to a clean end");
        Assert.True(rejections.Count >= 4, $"only {string.Join(", ", rejections)} were seen");
    }

    private static async Task<Outcome> RunAsync(byte[] input, Random rng)
    {
        var pipe = new Pipe(new PipeOptions(pauseWriterThreshold: 16 * 1024, resumeWriterThreshold: 8 * 1024,
            minimumSegmentSize: 256, useSynchronizationContext: false));
        int chunkMax = rng.Next(1, 3000);
        var chunkSeed = rng.Next();
        var writer = Task.Run(async () =>
        {
            var chunks = new Random(chunkSeed);
            for (int at = 0; at < input.Length;)
            {
                int n = Math.Min(chunks.Next(1, chunkMax + 1), input.Length - at);
                var flush = await pipe.Writer.WriteAsync(input.AsMemory(at, n));
                at += n;
                if (flush.IsCompleted) break;   // the reader gave up on the stream
            }
            await pipe.Writer.CompleteAsync();
        });
        var outcome = await Task.Run(() => ReadLoopAsync(pipe.Reader));
        await writer;
        return outcome;
    }

    /// <summary>The loop a connection runs: Kestrel's read contract around <see cref="PeerFrameReader.TryRead"/>.</summary>
    private static async Task<Outcome> ReadLoopAsync(PipeReader reader)
    {
        int frames = 0;
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync();
                var buffer = result.Buffer;
                try
                {
                    while (PeerFrameReader.TryRead(ref buffer, MaxPayload, out var header, out var payload))
                    {
                        Assert.InRange(header.PayloadLength, 0, MaxPayload);
                        Assert.Equal(header.PayloadLength, payload.Length);
                        FrameReaderTests.Decode(header.Type, payload);
                        frames++;
                    }
                    // "Need more" may only be said while the frame in progress fits the bound.
                    Assert.True(buffer.Length < PeerProtocol.HeaderSize + MaxPayload,
                        $"the reader waited with {buffer.Length} bytes buffered");
                    if (result.IsCompleted) return new Outcome(frames, null, !buffer.IsEmpty);
                }
                finally
                {
                    reader.AdvanceTo(buffer.Start, buffer.End);
                }
            }
        }
        catch (PeerProtocolException ex)
        {
            return new Outcome(frames, ex.Rejection, false);
        }
        finally
        {
            await reader.CompleteAsync();
        }
    }

    private static (byte[] Bytes, int Frames) ValidStream(Random rng)
    {
        int count = rng.Next(1, 7);
        var buffer = new ArrayBufferWriter<byte>();
        for (int i = 0; i < count; i++)
        {
            var volume = new Guid(Bytes(rng, 16));
            ulong seq = (ulong)rng.NextInt64();
            switch (rng.Next(9))
            {
                case 0: PeerFrameWriter.WriteHello(buffer, seq, new PeerHello(1, (ushort)rng.Next(1, 5), "host-" + rng.Next())); break;
                case 1: PeerFrameWriter.WriteHelloAck(buffer, seq, new PeerHelloAck(1, "peer-" + rng.Next())); break;
                case 2: ReplicationFrameWriter.WriteWrite(buffer, seq, PeerFrameFlags.Fua, volume, (ulong)rng.Next(), Bytes(rng, rng.Next(1, 4000))); break;
                case 3: ReplicationFrameWriter.WriteZero(buffer, seq, PeerFrameFlags.None, new PeerZero(volume, (ulong)rng.Next(), (ulong)rng.Next(1, int.MaxValue))); break;
                case 4: ReplicationFrameWriter.WriteFlush(buffer, seq, new PeerFlush(volume)); break;
                case 5: ReplicationFrameWriter.WriteAck(buffer, seq, new PeerAck((ulong)rng.NextInt64())); break;
                case 6: PeerFrameWriter.WriteError(buffer, seq, new PeerError(seq, PeerErrorCode.IoError, new string('e', rng.Next(0, 200)))); break;
                case 7:
                    ulong at = 0;
                    var ranges = Enumerable.Range(0, rng.Next(0, 40)).Select(_ =>
                    {
                        var range = new DivergedRange(at + (ulong)rng.Next(0, 1 << 20), (ulong)rng.Next(1, 1 << 20));
                        at = range.Offset + range.Length;
                        return range;
                    }).ToArray();
                    ReplicationFrameWriter.WriteAttachAck(buffer, seq, new PeerAttachAck(PeerAttachFlags.Created,
                        new Storage.Tracking.DataGenerations(volume, [new Guid(Bytes(rng, 16))]), rng.Next(2) == 0 ? null : ranges));
                    break;
                default: PeerFrameWriter.WriteHeartbeat(buffer, seq); break;
            }
        }
        return (buffer.WrittenSpan.ToArray(), count);
    }

    private static byte[] Mutate(byte[] input, Mutation mutation, Random rng)
    {
        switch (mutation)
        {
            case Mutation.None:
                return input;
            case Mutation.FlipBits:
                for (int k = rng.Next(1, 5); k > 0; k--) input[rng.Next(input.Length)] ^= (byte)(1 << rng.Next(8));
                return input;
            case Mutation.Truncate:
                return input[..rng.Next(input.Length)];
            case Mutation.Overwrite:
            {
                int at = rng.Next(input.Length);
                rng.NextBytes(input.AsSpan(at, Math.Min(rng.Next(1, 64), input.Length - at)));
                return input;
            }
            case Mutation.Insert:
            {
                int at = rng.Next(input.Length + 1);
                return [.. input[..at], .. Bytes(rng, rng.Next(1, 64)), .. input[at..]];
            }
            case Mutation.RandomBytes:
                return Bytes(rng, rng.Next(0, 40_000));
            case Mutation.BadLength:
            {
                // A well-formed first header that announces a length of any size, checksum fixed up,
                // followed by a random amount of what it announced.
                var frame = input[..PeerProtocol.HeaderSize];
                uint length = rng.Next(3) switch { 0 => (uint)rng.Next(), 1 => uint.MaxValue - (uint)rng.Next(100), _ => (uint)rng.Next(MaxPayload * 2) };
                BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(PeerProtocol.TypeOffset), (ushort)PeerFrameType.Write);
                BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(PeerProtocol.FlagsOffset), 0);
                BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(PeerProtocol.LengthOffset), length);
                return [.. frame, .. Bytes(rng, (int)Math.Min(length, (uint)rng.Next(MaxPayload * 3)))];
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(mutation));
        }
    }

    private static byte[] Bytes(Random rng, int n)
    {
        var bytes = new byte[n];
        rng.NextBytes(bytes);
        return bytes;
    }
}
