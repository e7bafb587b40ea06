using System.Buffers;
using System.Buffers.Binary;
using CsCheck;
using Roam.Peers.Protocol;
using Roam.Replication.Protocol;
using Roam.Replication.Tests.Support;
using Roam.Storage.Tracking;

namespace Roam.Replication.Tests;

/// <summary>HandOver's version 3 section (the old primary's other replicas): round trips, limits, and malformed payloads refused.</summary>
public sealed class HandOverFrameTests
{
    private static readonly Gen<string> PeerName = Gen.String[Gen.Char["abcxyz019.-_éü中"], 1, 60];

    private static readonly Gen<PeerExtent[]> Extents =
        Gen.Select(Gen.ULong[1, 1UL << 30], Gen.ULong[1, 1UL << 30]).Array[0, 40].Select(pairs =>
        {
            // Ascending and apart: each range starts past the previous one's end.
            ulong at = 0;
            return pairs.Select(p => { var e = new PeerExtent(at + p.Item1, p.Item2); at = e.Offset + e.Length; return e; }).ToArray();
        });

    private static readonly Gen<PeerHandOverReplica> Replica =
        Gen.Select(PeerName, Gen.Byte[0, 3], Gen.Long[0, long.MaxValue], Gen.Bool, Gen.Guid, Extents)
            .Select((name, flags, bandwidth, synced, generation, extents) =>
                new PeerHandOverReplica(name, (PeerHandOverReplicaFlags)flags, bandwidth, synced ? generation : null, extents));

    private static PeerHandOver Sample(int replicas = 2, int extents = 3)
    {
        var list = Enumerable.Range(0, replicas).Select(i => new PeerHandOverReplica($"host-{i}", PeerHandOverReplicaFlags.Async, 1000 * i,
            i == 0 ? null : Guid.NewGuid(), [.. Enumerable.Range(0, extents).Select(e => new PeerExtent((ulong)e * 1_000_000, 65536))])).ToList();
        return new PeerHandOver(Guid.NewGuid(), DataGenerations.New().Next(), PeerHandOverFlags.KeepOldPrimary, list);
    }

    private static byte[] PayloadOf(in PeerHandOver handOver)
    {
        var copy = handOver;
        var bytes = Frames.Of(w => ReplicationFrameWriter.WriteHandOver(w, 1, copy));
        return bytes[PeerProtocol.HeaderSize..];
    }

    private static void AssertSame(PeerHandOver expected, PeerHandOver actual)
    {
        Assert.Equal((expected.VolumeId, expected.Flags, expected.Generations.Current), (actual.VolumeId, actual.Flags, actual.Generations.Current));
        Assert.Equal(expected.Generations.History, actual.Generations.History);
        if (expected.Replicas is null)
        {
            Assert.Null(actual.Replicas);
            return;
        }
        Assert.NotNull(actual.Replicas);
        Assert.Equal(expected.Replicas.Count, actual.Replicas.Count);
        foreach (var (e, a) in expected.Replicas.Zip(actual.Replicas))
        {
            Assert.Equal((e.Peer, e.Flags, e.Bandwidth, e.SyncedGeneration), (a.Peer, a.Flags, a.Bandwidth, a.SyncedGeneration));
            Assert.Equal(e.OutOfSync, a.OutOfSync);
        }
    }

    [Fact]
    public void Replicas_round_trip_whole_and_one_segment_per_byte() =>
        Gen.Select(Gen.Guid, Replica.Array[0, 5], Gen.Bool, Gen.ULong).Sample((volume, replicas, perByte, seq) =>
        {
            var unique = replicas.DistinctBy(r => r.Peer).ToList();
            var handOver = new PeerHandOver(volume, DataGenerations.New().Next().Next(), PeerHandOverFlags.AsyncLink, unique);
            var bytes = Frames.Of(w => ReplicationFrameWriter.WriteHandOver(w, seq, handOver));
            var (header, payload) = Frames.ReadOne(perByte ? Sequences.SegmentPerByte(bytes) : Sequences.Whole(bytes));
            Assert.Equal(new PeerFrameHeader(PeerFrameType.HandOver, PeerFrameFlags.None, seq, handOver.PayloadLength), header);
            AssertSame(handOver, PeerHandOver.Read(new ReadOnlySequence<byte>(payload)));
        }, iter: 200);

    [Fact]
    public void Without_the_section_it_is_the_version_2_frame()
    {
        var v2 = new PeerHandOver(Guid.NewGuid(), DataGenerations.New().Next(), PeerHandOverFlags.KeepOldPrimary);
        var payload = PayloadOf(v2);
        Assert.Equal(PeerHandOver.FixedLength + 16, payload.Length);
        AssertSame(v2, PeerHandOver.Read(new ReadOnlySequence<byte>(payload)));
        // An empty section is not the same as none: a version 3 sender with no other replicas says so.
        var none = v2 with { Replicas = [] };
        Assert.Equal(payload.Length + 1, PayloadOf(none).Length);
        Assert.Empty(PeerHandOver.Read(new ReadOnlySequence<byte>(PayloadOf(none))).Replicas!);
    }

    [Fact]
    public void The_largest_section_fits_the_reader_and_the_replica_session_limit()
    {
        var name = new string('h', PeerProtocol.MaxHostNameLength);
        var replicas = Enumerable.Range(0, PeerProtocol.MaxHandOverReplicas).Select(i => new PeerHandOverReplica(name[..^2] + i.ToString("00"),
            PeerHandOverReplicaFlags.None, 1, Guid.NewGuid(),
            [.. Enumerable.Range(0, PeerProtocol.MaxHandOverExtents).Select(e => new PeerExtent((ulong)e * 2, 1))])).ToList();
        var generations = new DataGenerations(Guid.NewGuid(), [.. Enumerable.Range(0, PeerProtocol.MaxGenerationsHistory).Select(_ => Guid.NewGuid())]);
        var largest = new PeerHandOver(Guid.NewGuid(), generations, PeerHandOverFlags.None, replicas);
        Assert.True(PeerProtocol.IsValidLength(PeerFrameType.HandOver, (uint)largest.PayloadLength));
        Assert.False(PeerProtocol.IsValidLength(PeerFrameType.HandOver, (uint)largest.PayloadLength + 1));
        Assert.True(largest.PayloadLength <= PeerProtocol.DefaultMaxPayload, "a replica session could not read it");
        var bytes = Frames.Of(w => ReplicationFrameWriter.WriteHandOver(w, 9, largest));
        var (_, payload) = Frames.ReadOne(Sequences.Whole(bytes));
        AssertSame(largest, PeerHandOver.Read(new ReadOnlySequence<byte>(payload)));
        // The writer refuses what the reader would.
        var tooMany = largest with { Replicas = [.. replicas, replicas[0] with { Peer = "one-more" }] };
        Assert.Throws<ArgumentException>(() => Frames.Of(w => ReplicationFrameWriter.WriteHandOver(w, 9, tooMany)));
    }

    /// <summary>Offset of the first replica's fields in <see cref="Sample"/>'s payload (no history beyond one entry, names "host-N").</summary>
    private const int Section = PeerHandOver.FixedLength + 16;
    private const int FirstName = Section + 2;
    private const int FirstFlags = FirstName + 6;
    private const int FirstExtentCount = FirstFlags + 1 + 8 + 16;
    private const int FirstExtents = FirstExtentCount + 4;

    public static TheoryData<string> Malformations() => ["count over the maximum", "count past the end", "empty name", "name past the end",
        "invalid UTF-8 name", "unknown replica flags", "negative bandwidth", "extent count over the maximum", "extents past the end",
        "empty extent", "extents out of order", "touching extents", "overflowing extent", "duplicate peer", "trailing byte"];

    [Theory]
    [MemberData(nameof(Malformations))]
    public void Malformed_sections_are_refused(string malformation)
    {
        var payload = PayloadOf(Sample());
        void U64(int at, ulong v) => BinaryPrimitives.WriteUInt64BigEndian(payload.AsSpan(at), v);
        switch (malformation)
        {
            case "count over the maximum": payload[Section] = PeerProtocol.MaxHandOverReplicas + 1; break;
            case "count past the end": payload[Section] = 3; break;
            case "empty name": payload[Section + 1] = 0; break;
            case "name past the end": payload = payload[..(FirstName + 3)]; break;
            case "invalid UTF-8 name": payload[FirstName + 1] = 0xFF; break;
            case "unknown replica flags": payload[FirstFlags] = 0x80; break;
            case "negative bandwidth": U64(FirstFlags + 1, ulong.MaxValue); break;
            case "extent count over the maximum": BinaryPrimitives.WriteUInt32BigEndian(payload.AsSpan(FirstExtentCount), PeerProtocol.MaxHandOverExtents + 1); break;
            case "extents past the end": BinaryPrimitives.WriteUInt32BigEndian(payload.AsSpan(FirstExtentCount), 1000); break;
            case "empty extent": U64(FirstExtents + 8, 0); break;
            case "extents out of order": U64(FirstExtents + 16, 0); break;
            case "touching extents": U64(FirstExtents + 16, 65536); break;
            case "overflowing extent": U64(FirstExtents + 32, ulong.MaxValue - 10); break;
            case "duplicate peer": payload = PayloadOf(Sample() with { Replicas = [Sample().Replicas![0], Sample().Replicas![0]] }); break;
            case "trailing byte": payload = [.. payload, 0]; break;
        }
        var ex = Assert.Throws<PeerProtocolException>(() => PeerHandOver.Read(new ReadOnlySequence<byte>(payload)));
        Assert.Equal(PeerRejection.MalformedPayload, ex.Rejection);
    }

    [Fact]
    public void Mutated_sections_decode_or_are_refused_never_anything_else()
    {
        var valid = PayloadOf(Sample(replicas: 3, extents: 5));
        int refused = 0;
        for (int i = 0; i < 2000; i++)
        {
            var rng = new Random(0x4A0 + i);
            var payload = valid.ToArray();
            switch (rng.Next(3))
            {
                case 0: for (int f = rng.Next(1, 4); f > 0; f--) payload[rng.Next(Section, payload.Length)] ^= (byte)(1 << rng.Next(8)); break;
                case 1: payload = payload[..rng.Next(Section, payload.Length)]; break;
                default: rng.NextBytes(payload.AsSpan(rng.Next(Section, payload.Length))); break;
            }
            try { PeerHandOver.Read(new ReadOnlySequence<byte>(payload)); }
            catch (PeerProtocolException ex) when (ex.Rejection == PeerRejection.MalformedPayload) { refused++; }
        }
        Assert.True(refused > 1000, $"only {refused} of 2000 mutations were refused");
    }
}
