using Roam.Peers.Protocol;
using Roam.Replication.Engine;
using Roam.Replication.Protocol;
using Roam.Peers.Transport;

namespace Roam.Replication.Source;

/// <summary>
/// The source side's one-off requests to a peer, each on a fresh connection: Attach (a link's start, or a
/// question to the destination of a hand-over in doubt) and Detach (a replica removed).
/// </summary>
internal sealed class PeerRequests(ReplicationService service, PeerConnector connector)
{
    public async Task<AttachedConnection> AttachAsync(ReplicatedVolume volume, string peer, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, service.Stopping);
        timeout.CancelAfter(service.Options.AttachTimeout);
        var connection = await connector.ConnectAsync(peer, timeout.Token).ConfigureAwait(false);
        try
        {
            var output = connection.Transport.Output;
            ReplicationFrameWriter.WriteAttach(output, 1, new PeerAttach(volume.VolumeId, (ulong)volume.Size, volume.Generations, volume.Name));
            await output.FlushAsync(timeout.Token).ConfigureAwait(false);
            var frame = await PeerFrameReader.ReadFrameAsync(connection.Transport.Input, PeerAttachAck.MaxLength, timeout.Token).ConfigureAwait(false)
                ?? throw new ReplicationException(ReplicationError.PeerProtocol, $"{peer} closed the connection instead of answering Attach");
            if (frame.Type == PeerFrameType.Error)
            {
                var error = PeerError.Read(frame.Payload);
                throw new ReplicationException(ReplicationError.PeerRefused, $"{peer} refused to replicate '{volume.Name}': {error.Code}: {error.Message}");
            }
            if (frame.Type != PeerFrameType.AttachAck)
                throw new ReplicationException(ReplicationError.PeerProtocol, $"{peer} answered Attach with {frame.Type}");
            var ack = PeerAttachAck.Read(frame.Payload);
            if (ack.Diverged is not null && connection.ProtocolVersion < PeerProtocol.DivergedRegionsVersion)
                throw new ReplicationException(ReplicationError.PeerProtocol, $"{peer} sent diverged regions on a version {connection.ProtocolVersion} connection");
            return new AttachedConnection(connection, ack);
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Tells <paramref name="peer"/> to drop its replica role for <paramref name="volume"/>.</summary>
    public async Task DetachAsync(string volume, string peer, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, service.Stopping);
        timeout.CancelAfter(service.Options.AttachTimeout);
        await using var connection = await connector.ConnectAsync(peer, timeout.Token).ConfigureAwait(false);
        ReplicationFrameWriter.WriteDetach(connection.Transport.Output, 1, new PeerDetach(volume));
        await connection.Transport.Output.FlushAsync(timeout.Token).ConfigureAwait(false);
        var frame = await PeerFrameReader.ReadFrameAsync(connection.Transport.Input, PeerProtocol.MaxHandshakePayload, timeout.Token).ConfigureAwait(false)
            ?? throw new ReplicationException(ReplicationError.PeerProtocol, $"{peer} closed the connection instead of answering Detach");
        if (frame.Type == PeerFrameType.Error)
        {
            var error = PeerError.Read(frame.Payload);
            throw new ReplicationException(ReplicationError.PeerRefused, $"{peer} refused to detach '{volume}': {error.Code}: {error.Message}");
        }
        if (frame.Type != PeerFrameType.Ack) throw new ReplicationException(ReplicationError.PeerProtocol, $"{peer} answered Detach with {frame.Type}");
    }
}
