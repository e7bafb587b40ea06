using Microsoft.Extensions.Logging;
using Roam.Daemon.Jobs;
using Roam.Daemon.Vms;
using Roam.Hypervisor.Qemu;
using Roam.Hypervisor.Qmp;
using Roam.Replication.Engine;

namespace Roam.Daemon.Migration;

// The source's waits once the disk may be the destination's: the guest stays paused here, for as long as it takes.
internal sealed partial class VmMigrationSource
{
    /// <summary>
    /// After a hand-over that threw: true if the destination was promoted anyway (the migration goes on), false if it
    /// certainly was not (the VM may resume here). While that is in doubt the VM stays paused (QEMU sits in
    /// pre-switchover) and the replication layer asks the destination until it knows.
    /// </summary>
    private async Task<bool> HandOverTookPlaceAsync(string error)
    {
        bool said = false;
        while (true)
        {
            var status = replication.GetStatus(m.Volume);
            if (status.Role == VolumeRole.Replica)
            {
                Log.VmMigrationSafety(logger, m.Name, $"the disk hand-over reported a failure ({error}) but {m.Peer} took over: finishing the migration");
                return true;
            }
            if (status.HandOverPeer is null) return false;
            if (!said)
            {
                Log.VmMigrationSafety(logger, m.Name, $"the disk hand-over to {m.Peer} is in doubt ({error}): the VM stays paused here until it is settled");
                said = true;
            }
            m.Report(v => v with
            {
                Error = $"the disk hand-over to {m.Peer} is in doubt ({JobManager.OneLine(error)}): the VM stays paused here until {m.Peer} says whether it took over",
            });
            await Task.Delay(500).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Waits for the destination's word on the VM: null once it runs there, else why it did not arrive. The VM stays
    /// paused here meanwhile, for as long as the destination cannot be asked: it holds the disk, so it may be running.
    /// </summary>
    private async Task<string?> DestinationWordAsync()
    {
        var vm = m.Vm;
        string? said = null;
        while (true)
        {
            string waiting;
            try
            {
                var reply = await peers.AskAsync(m.Peer, new VmTunnelRequest(VmTunnelOp.Status, vm.Definition, m.DiskTotal, null), TimeSpan.FromSeconds(10),
                    CancellationToken.None).ConfigureAwait(false);
                if (reply.Status == VmTunnelStatus.Ok) return null;
                if (reply.Status is VmTunnelStatus.Failed or VmTunnelStatus.Refused) return reply.Error ?? "no reason given";
                waiting = $"{m.Peer} is still loading it";
            }
            catch (VmException ex) { waiting = $"{m.Peer} does not answer ({JobManager.OneLine(ex.Message)})"; }
            if (m.StreamBroken is { } streamBroken) waiting += $"; the memory stream broke: {JobManager.OneLine(streamBroken.Message)}";
            string note = $"waiting for {m.Peer} to confirm that the VM runs there: {waiting}; the VM stays paused here (its disk is at {m.Peer})";
            if (said is null) Log.VmMigrationSafety(logger, m.Name, note);
            said = note;
            // The phase moves on with the note, not before: the API shows it confirming with the reason why.
            m.MoveTo(VmMigrationPhase.Confirming, v => v with { Error = note });
            await Task.Delay(500).ConfigureAwait(false);
        }
    }

    /// <summary>The VM did not arrive: asks the destination for the disk back until this host is its primary again.</summary>
    private async Task TakeBackAsync()
    {
        var vm = m.Vm;
        m.MoveTo(VmMigrationPhase.TakingBack);
        while (true)
        {
            string waiting;
            try
            {
                var reply = await peers.AskAsync(m.Peer, new VmTunnelRequest(VmTunnelOp.Return, vm.Definition, m.DiskTotal, null), TimeSpan.FromSeconds(180),
                    CancellationToken.None).ConfigureAwait(false);
                waiting = reply.Ok ? "it handed the disk over, this host does not see itself primary yet" : reply.Error ?? "refused";
            }
            catch (VmException ex) { waiting = $"{m.Peer} does not answer ({JobManager.OneLine(ex.Message)})"; }
            var status = replication.GetStatus(m.Volume);
            if (status.Role == VolumeRole.Primary && status.HandOverPeer is null && !status.WritesRefused) return;
            string note = $"the VM did not arrive at {m.Peer}; asking {m.Peer} to hand its disk back: {waiting}; the VM stays paused here";
            Log.VmMigrationSafety(logger, m.Name, note);
            m.Report(v => v with { Error = note });
            await Task.Delay(1000).ConfigureAwait(false);
        }
    }

    /// <summary>Until cancelled: the guest is paused again whenever QEMU resumes it (QEMU resumes a guest whose migration failed).</summary>
    private async Task KeepPausedAsync(QemuProcess qemu, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested && !qemu.HasExited)
        {
            try { await qemu.Qmp.WaitForEventAsync(QmpEvents.Resume, null, cancellationToken).ConfigureAwait(false); }
            catch (OperationCanceledException) { return; }
            catch (Exception e) when (e is QmpException or IOException or ObjectDisposedException) { return; }
            Log.VmMigrationSafety(logger, m.Name, "QEMU resumed the guest after the disk hand-over: pausing it again");
            await VmQemuControl.PauseAsync(qemu).ConfigureAwait(false);
        }
    }
}
