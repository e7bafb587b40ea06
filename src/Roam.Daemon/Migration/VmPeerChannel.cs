using System.Text.Json;
using Roam.Daemon.Vms;
using Roam.Peers.Transport;
using Roam.Peers.Tunnel;
using Roam.Replication.Engine;

namespace Roam.Daemon.Migration;

/// <summary>The source's questions to a destination roamd about VMs, through the authenticated peer tunnel (see <see cref="VmTunnelOp"/>).</summary>
internal sealed class VmPeerChannel(ReplicationService replication)
{
    public Task<VmTunnelReply> AskAsync(string peer, VmTunnelRequest request, CancellationToken cancellationToken) =>
        AskAsync(peer, request, TimeSpan.FromSeconds(15), cancellationToken);

    public async Task<VmTunnelReply> AskAsync(string peer, VmTunnelRequest request, TimeSpan timeout, CancellationToken cancellationToken)
    {
        // Bounds the connect too (a link that drops packets rather than refusing).
        using var connectTimeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        connectTimeout.CancelAfter(timeout + TimeSpan.FromSeconds(5));
        try
        {
            await using var tunnel = await replication.OpenTunnelAsync(peer, VmTunnelJson.Serialize(request),
                timeout, connectTimeout.Token).ConfigureAwait(false);
            return ParseReply(peer, tunnel.Reply);
        }
        catch (PeerConnectException ex)
        {
            throw new VmException(VmError.PeerUnavailable, ex.Message);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            throw new VmException(VmError.PeerUnavailable, $"{peer} did not answer about VMs: {ex.Message}");
        }
    }

    public static VmTunnelReply ParseReply(string peer, string json)
    {
        try { return VmTunnelJson.ParseReply(json); }
        catch (JsonException ex) { throw new IOException($"{peer} answered nonsense: {ex.Message}"); }
    }

    /// <summary>Whether the peer answers a question through the peer channel (within a few seconds).</summary>
    public async Task<bool> AnswersAsync(string peer, VmDefinition definition, long size)
    {
        try
        {
            await AskAsync(peer, new VmTunnelRequest(VmTunnelOp.Status, definition, size, null), TimeSpan.FromSeconds(5), CancellationToken.None).ConfigureAwait(false);
            return true;
        }
        catch (VmException) { return false; }
    }

    /// <summary>Sends the boot files the destination lacks (each once: it keeps them by content).</summary>
    public async Task SendBootFilesAsync(VmRuntime vm, string peer, long diskTotal, IReadOnlyList<BootFileOffer> bootFiles, CancellationToken ct)
    {
        foreach (var offer in bootFiles)
        {
            var request = new VmTunnelRequest(VmTunnelOp.BootFile, vm.Definition, diskTotal, vm.Accelerator, BootFiles: [offer]);
            await using var tunnel = await replication.OpenTunnelAsync(peer, VmTunnelJson.Serialize(request),
                TimeSpan.FromSeconds(30), ct).ConfigureAwait(false);
            var reply = ParseReply(peer, tunnel.Reply);
            if (!reply.Ok) throw new IOException($"{peer} does not take the boot file {offer.Path}: {reply.Error}");
            if (reply.NeedBootFiles is not { Count: > 0 }) continue;
            await Vms.BootFiles.SendAsync(offer, tunnel.Transport.Output, ct).ConfigureAwait(false);
            var json = await TunnelProtocol.ReadFrameAsync(tunnel.Transport.Input, ct).ConfigureAwait(false)
                ?? throw new IOException($"{peer} closed the tunnel while receiving the boot file {offer.Path}");
            var received = ParseReply(peer, json);
            if (!received.Ok) throw new IOException($"{peer} did not take the boot file {offer.Path}: {received.Error}");
        }
    }
}
