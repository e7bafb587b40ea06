using Roam.Control;
using Roam.Daemon.Vms;
using Roam.Hypervisor.Qemu;

namespace Roam.Daemon.Migration;

/// <summary>
/// What the migration classes need of roamd's VMs (VmService, which implements it): the lock over the VMs, the
/// registry, QEMU's start and the records of VMs meant to run.
/// </summary>
internal interface IVmHost
{
    /// <summary>Guards the VMs, their runtime state (<see cref="VmRuntime"/>'s State, Error, Migration) and the arrivals.</summary>
    Lock Lock { get; }

    /// <summary>The VM of that name here, or null; the caller holds <see cref="Lock"/>.</summary>
    VmRuntime? Find(string name);

    /// <summary>The VM whose disk <paramref name="volume"/> is, or null; the caller holds <see cref="Lock"/>.</summary>
    VmRuntime? FindByVolume(string volume);

    /// <summary>Makes <paramref name="vm"/> one of this host's VMs (replacing one of its name); the caller holds <see cref="Lock"/>.</summary>
    void Add(VmRuntime vm);

    /// <summary>Keeps the definition in DATA_DIR/vms.</summary>
    void SaveDefinition(VmDefinition definition);

    /// <summary>Starts QEMU for <paramref name="vm"/> (its gate held) and supervises it.</summary>
    Task<QemuProcess> LaunchAsync(VmRuntime vm, Accelerator accelerator, bool incoming, CancellationToken cancellationToken);

    /// <summary>Forgets the VM here: its definition and run record go.</summary>
    void Forget(VmRuntime vm);

    /// <summary>The VM left for another host: forgotten, its migration's last view kept for `roam vm show` and the API.</summary>
    void Departed(VmRuntime vm, VmMigrationView final);

    /// <summary>The Unix socket the VM's memory stream passes through while it migrates (see VmSocketPaths).</summary>
    string MigrationSocketOf(string name);

    /// <summary>Throws a NetworkException if a VM with <paramref name="nic"/> cannot have its network on this host.</summary>
    void CheckNetwork(Network.VmNic nic);

    /// <summary>What <paramref name="nic"/> is attached to on this host (see VmNetworks.Where).</summary>
    string NetworkHere(Network.VmNic nic);

    /// <summary>The VM is not meant to be running here any more (a roamd restart leaves it alone).</summary>
    void DeleteRunRecord(string name);
}
