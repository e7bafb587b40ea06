using Roam.Peers.Protocol;

namespace Roam.Replication.Target;

/// <summary>An Attach this host refuses: the session answers it with an Error frame of <see cref="Code"/>.</summary>
internal sealed class AttachRefused(PeerErrorCode code, string message) : Exception(message)
{
    public PeerErrorCode Code { get; } = code;
}
