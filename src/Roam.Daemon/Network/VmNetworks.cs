using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;

namespace Roam.Daemon.Network;

/// <summary>
/// The VMs' networks on this host: a persistent tap per running VM with a NIC, on the default network's bridge or on
/// the bridge its definition names. A tap is made before QEMU starts (QEMU opens it by name) and removed once QEMU has
/// ended, here or by leaving for another host; the default network goes with its last tap. Taps outlive roamd with
/// their QEMUs, and a restarted roamd finds them by name. One at a time: a VM's tap and the default network's removal
/// never race.
/// </summary>
internal sealed class VmNetworks(string dataDir, HostVmNetwork defaultNetwork, ILogger logger)
{
    private readonly SemaphoreSlim _serial = new(1, 1);

    public HostVmNetwork Default => defaultNetwork;

    /// <summary>The tap of VM <paramref name="vm"/>: "rt" and a hash of data dir and name, within IFNAMSIZ (15).</summary>
    public string TapOf(string vm) =>
        "rt" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Path.GetFullPath(dataDir) + "\0" + vm)))[..12];

    /// <summary>Checks up front (before a VM is created or arrives) that its NIC can be given here.</summary>
    public void Check(VmNic nic)
    {
        if (nic.Bridge is { } bridge)
        {
            if (!NetTools.IsBridge(bridge))
                throw new NetworkException(NetworkError.UnknownBridge,
                    NetTools.LinkExists(bridge) ? $"{bridge} is not a bridge on this host: bridge=BR needs a Linux bridge (see: ip -d link show {bridge})"
                        : $"this host has no bridge {bridge} (see: ip link show type bridge)");
            NetTools.RequireRoot($"a tap on bridge {bridge}");
        }
        else NetTools.RequireRoot("the default VM network");
    }

    /// <summary>Makes (or finds) the VM's tap on its bridge, setting up the default network if it is the one; returns the tap's name.</summary>
    public async Task<string> AttachAsync(string vm, VmNic nic, CancellationToken ct)
    {
        Check(nic);
        var tap = TapOf(vm);
        await _serial.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            string bridge;
            if (nic.Bridge is { } named) bridge = named;
            else
            {
                await defaultNetwork.EnsureAsync(ct).ConfigureAwait(false);
                bridge = defaultNetwork.Bridge;
            }
            if (!NetTools.LinkExists(tap)) await NetTools.IpAsync(ct, "tuntap", "add", "dev", tap, "mode", "tap").ConfigureAwait(false);
            await NetTools.IpAsync(ct, "link", "set", tap, "master", bridge).ConfigureAwait(false);
            await NetTools.IpAsync(ct, "link", "set", tap, "up").ConfigureAwait(false);
            Log.VmTapAttached(logger, vm, tap, bridge);
            return tap;
        }
        finally { _serial.Release(); }
    }

    /// <summary>Removes the VM's tap (its QEMU has ended or left) and the default network once no VM uses it.</summary>
    public async Task DetachAsync(string vm, VmNic nic)
    {
        var tap = TapOf(vm);
        await _serial.WaitAsync().ConfigureAwait(false);
        try
        {
            if (NetTools.LinkExists(tap)) await NetTools.IpAsync(CancellationToken.None, "link", "del", tap).ConfigureAwait(false);
            if (nic.Bridge is null) await defaultNetwork.RemoveIfUnusedAsync(CancellationToken.None).ConfigureAwait(false);
            Log.VmTapRemoved(logger, vm, tap);
        }
        catch (NetworkException ex)
        {
            Log.VmNetworkCleanupFailed(logger, vm, ex.Message);
        }
        finally { _serial.Release(); }
    }

    /// <summary>
    /// What the VM's NIC is attached to here, for a migration to compare with the other host's: the default network's
    /// subnet, or a bridge's IPv4 networks. Different: the guest must learn it moved (its link goes down and up).
    /// </summary>
    public string Where(VmNic nic)
    {
        if (nic.Bridge is null) return "default " + defaultNetwork.Subnet;
        var networks = defaultNetwork.LocalNetworks().Where(n => n.Device == nic.Bridge).Select(n => n.Subnet.ToString()).Order(StringComparer.Ordinal);
        return "bridge " + string.Join(',', networks);
    }
}
