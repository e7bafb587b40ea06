using System.Buffers;
using Roam.Storage.Tracking;

using Roam.Peers.Protocol;

namespace Roam.Replication.Protocol;

/// <summary>
/// Attach (primary to replica, first frame after Hello): replicate the named volume of this size;
/// <see cref="Generations"/> are the primary's data generations.
/// </summary>
public readonly record struct PeerAttach(Guid VolumeId, ulong Size, DataGenerations Generations, string Name)
{
    /// <summary>Volume id, size, current generation, history count, name length.</summary>
    public const int FixedLength = PeerProtocol.AttachFixedLength;

    public static PeerAttach Read(in ReadOnlySequence<byte> payload)
    {
        var reader = new SequenceReader<byte>(payload);
        var volume = PayloadReader.ReadGuid(ref reader, PeerFrameType.Attach);
        ulong size = PayloadReader.ReadUInt64(ref reader, PeerFrameType.Attach);
        var generations = GenerationsCodec.Read(ref reader, PeerFrameType.Attach);
        if (!reader.TryRead(out byte nameLength)) PayloadReader.Malformed(PeerFrameType.Attach, "payload is cut short");
        string name = PayloadReader.ReadFinalText(ref reader, nameLength, PeerFrameType.Attach);
        if (name.Length == 0) PayloadReader.Malformed(PeerFrameType.Attach, "volume name is empty");
        return new PeerAttach(volume, size, generations, name);
    }
}

[Flags]
public enum PeerAttachFlags : byte
{
    None = 0,
    /// <summary>The replica volume did not exist and was created empty: a full sync is needed.</summary>
    Created = 1 << 0,
    /// <summary>The volume is primary on the answering host (it was promoted).</summary>
    Primary = 1 << 1,
    /// <summary>
    /// Version 3: the replica lost a split brain to the attaching host and the payload ends with the regions
    /// it wrote since the two parted (see <see cref="PeerAttachAck.Diverged"/>).
    /// </summary>
    Diverged = 1 << 2,
}

/// <summary>A byte range of a volume.</summary>
public readonly record struct DivergedRange(ulong Offset, ulong Length);

/// <summary>
/// AttachAck (replica to primary): what the replica holds. <see cref="Diverged"/>, when not null (flag
/// <see cref="PeerAttachFlags.Diverged"/>, version 3 and later): the replica lost a split brain to the
/// attaching host, and these ranges cover every region it changed since the two parted; the attaching
/// host resyncs them together with its own out-of-sync bitmap instead of the whole volume.
/// </summary>
public readonly record struct PeerAttachAck(PeerAttachFlags Flags, DataGenerations Generations, IReadOnlyList<DivergedRange>? Diverged = null)
{
    /// <summary>Flags, current generation, history count.</summary>
    public const int FixedLength = PeerProtocol.AttachAckFixedLength;

    /// <summary>The diverged section: range count (u32), then offset (u64) and length (u64) per range.</summary>
    public const int DivergedRangeLength = PeerProtocol.DivergedRangeLength;

    public const int MaxLength = PeerProtocol.AttachAckMaxLength;

    public static PeerAttachAck Read(in ReadOnlySequence<byte> payload)
    {
        var reader = new SequenceReader<byte>(payload);
        if (!reader.TryRead(out byte flags)) PayloadReader.Malformed(PeerFrameType.AttachAck, "payload is cut short");
        var generations = GenerationsCodec.Read(ref reader, PeerFrameType.AttachAck);
        List<DivergedRange>? diverged = null;
        if ((flags & (byte)PeerAttachFlags.Diverged) != 0)
        {
            uint count = PayloadReader.ReadUInt32(ref reader, PeerFrameType.AttachAck);
            if (count > PeerProtocol.MaxDivergedRanges) PayloadReader.Malformed(PeerFrameType.AttachAck, $"{count} diverged ranges");
            diverged = new List<DivergedRange>((int)count);
            ulong end = 0;
            for (uint i = 0; i < count; i++)
            {
                ulong offset = PayloadReader.ReadUInt64(ref reader, PeerFrameType.AttachAck);
                ulong length = PayloadReader.ReadUInt64(ref reader, PeerFrameType.AttachAck);
                // Ascending, apart and inside what a volume size (a long) can address.
                if (length == 0 || offset < end || offset > long.MaxValue || length > long.MaxValue - offset)
                    PayloadReader.Malformed(PeerFrameType.AttachAck, $"diverged range {i} ({offset}, {length}) is empty, out of order or out of range");
                diverged.Add(new DivergedRange(offset, length));
                end = offset + length;
            }
        }
        PayloadReader.ExpectEnd(ref reader, PeerFrameType.AttachAck);
        return new PeerAttachAck((PeerAttachFlags)flags, generations, diverged);
    }
}

/// <summary>Generations (primary to replica): the replica's data now is this generation (sent when it is in sync).</summary>
public readonly record struct PeerGenerations(Guid VolumeId, DataGenerations Generations)
{
    /// <summary>Volume id, current generation, history count.</summary>
    public const int FixedLength = PeerProtocol.GenerationsFixedLength;

    public static PeerGenerations Read(in ReadOnlySequence<byte> payload)
    {
        var reader = new SequenceReader<byte>(payload);
        var volume = PayloadReader.ReadGuid(ref reader, PeerFrameType.Generations);
        var generations = GenerationsCodec.Read(ref reader, PeerFrameType.Generations);
        PayloadReader.ExpectEnd(ref reader, PeerFrameType.Generations);
        return new PeerGenerations(volume, generations);
    }
}

internal static class GenerationsCodec
{
    public static int Length(DataGenerations generations) => 16 + sizeof(byte) + 16 * Count(generations);

    private static int Count(DataGenerations generations) => Math.Min(generations.History.Count, PeerProtocol.MaxGenerationsHistory);

    public static int Write(Span<byte> destination, DataGenerations generations)
    {
        generations.Current.TryWriteBytes(destination, bigEndian: true, out _);
        int count = Count(generations);
        destination[16] = (byte)count;
        for (int i = 0; i < count; i++) generations.History[i].TryWriteBytes(destination[(17 + 16 * i)..], bigEndian: true, out _);
        return 17 + 16 * count;
    }

    public static DataGenerations Read(ref SequenceReader<byte> reader, PeerFrameType type)
    {
        var current = PayloadReader.ReadGuid(ref reader, type);
        if (!reader.TryRead(out byte count)) PayloadReader.Malformed(type, "payload is cut short");
        if (count > PeerProtocol.MaxGenerationsHistory) PayloadReader.Malformed(type, $"{count} history entries");
        var history = new Guid[count];
        for (int i = 0; i < count; i++) history[i] = PayloadReader.ReadGuid(ref reader, type);
        return new DataGenerations(current, history);
    }
}
