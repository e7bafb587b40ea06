namespace Roam.Peers.Protocol;

/// <summary>A validated frame header (24 bytes on the wire, see <see cref="PeerProtocol"/>).</summary>
public readonly record struct PeerFrameHeader(PeerFrameType Type, PeerFrameFlags Flags, ulong Sequence, int PayloadLength);
