using System.Buffers;

using Roam.Peers.Protocol;

namespace Roam.Replication.Protocol;

/// <summary>
/// Detach (primary to replica, in place of Attach as the first frame after Hello): the primary no longer
/// replicates the named volume to this host; the replica drops its replica role and keeps the data as a
/// volume of its own. Answered with Ack (by sequence) or Error.
/// </summary>
public readonly record struct PeerDetach(string Name)
{
    /// <summary>Name length.</summary>
    public const int FixedLength = PeerProtocol.DetachFixedLength;

    public static PeerDetach Read(in ReadOnlySequence<byte> payload)
    {
        var reader = new SequenceReader<byte>(payload);
        if (!reader.TryRead(out byte nameLength)) PayloadReader.Malformed(PeerFrameType.Detach, "payload is cut short");
        string name = PayloadReader.ReadFinalText(ref reader, nameLength, PeerFrameType.Detach);
        if (name.Length == 0) PayloadReader.Malformed(PeerFrameType.Detach, "volume name is empty");
        return new PeerDetach(name);
    }
}
