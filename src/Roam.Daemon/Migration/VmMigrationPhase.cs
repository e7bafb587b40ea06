using Roam.Control;

namespace Roam.Daemon.Migration;

/// <summary>
/// Where a VM migration stands, at its source, in order. The rules that depend on it (who may roll back, whether the
/// memory relay drains, what the API calls it) are the pure functions of <see cref="VmMigrationPhaseRules"/>.
/// </summary>
internal enum VmMigrationPhase
{
    /// <summary>Checks done, boot files sent if the destination lacks them.</summary>
    Preparing,
    /// <summary>The disk is copied while the guest writes (then mirrored synchronously until in sync).</summary>
    CopyingDisk,
    /// <summary>QEMU's pre-copy of the memory through the tunnel, the disk mirrored asynchronously.</summary>
    MigratingMemory,
    /// <summary>QEMU paused before the switch-over; nothing handed over yet.</summary>
    PausedForSwitchover,
    /// <summary>The disk hand-over is under way: the destination may be promoted at any moment.</summary>
    HandingOver,
    /// <summary>The destination confirmed it holds the disk as primary; QEMU was told to finish.</summary>
    HandedOver,
    /// <summary>QEMU finished here; the guest stays paused until the destination says whether it runs there.</summary>
    Confirming,
    /// <summary>The VM did not arrive: the source asks the destination for the disk back, the guest paused.</summary>
    TakingBack,
    /// <summary>The VM runs at the destination; the source QEMU quit.</summary>
    Completed,
    /// <summary>Undone before the hand-over: the VM runs at the source with its disk.</summary>
    RolledBack,
    /// <summary>Undone after the hand-over: the destination handed the disk back and the VM runs at the source again.</summary>
    HandedBack,
    /// <summary>Failed after the hand-over without the disk coming back: the guest is kept paused at the source.</summary>
    Failed,
}

/// <summary>Who decides where the guest runs when a migration fails in a given phase.</summary>
internal enum RollbackOwner
{
    /// <summary>The source holds the disk: it cancels QEMU's migration and resumes its guest.</summary>
    Source,
    /// <summary>The destination may hold the disk: the source keeps its guest paused until the destination's word.</summary>
    Destination,
    /// <summary>The migration is over; nothing is left to roll back.</summary>
    None,
}

/// <summary>The rules of <see cref="VmMigrationPhase"/>, as pure functions.</summary>
internal static class VmMigrationPhaseRules
{
    /// <summary>
    /// Before the disk hand-over took place the source cancels and resumes its guest (a hand-over under way counts as
    /// not taken place only once it certainly did not promote the destination: the source waits while it is in doubt).
    /// From the hand-over on the destination decides: it holds the disk and resumes the guest only if all of it arrived.
    /// </summary>
    public static RollbackOwner RollbackOwner(this VmMigrationPhase phase) => phase switch
    {
        VmMigrationPhase.Preparing or VmMigrationPhase.CopyingDisk or VmMigrationPhase.MigratingMemory
            or VmMigrationPhase.PausedForSwitchover or VmMigrationPhase.HandingOver => Migration.RollbackOwner.Source,
        VmMigrationPhase.HandedOver or VmMigrationPhase.Confirming or VmMigrationPhase.TakingBack => Migration.RollbackOwner.Destination,
        VmMigrationPhase.Completed or VmMigrationPhase.RolledBack or VmMigrationPhase.HandedBack or VmMigrationPhase.Failed => Migration.RollbackOwner.None,
        _ => throw new ArgumentOutOfRangeException(nameof(phase), phase, null),
    };

    /// <summary>
    /// Whether the source's memory relay swallows the rest of QEMU's stream when the tunnel fails, instead of failing
    /// QEMU's migration: from the start of the hand-over on, since QEMU resumes a guest whose migration failed and the
    /// disk may be the destination's by then.
    /// </summary>
    public static bool RelayDrains(this VmMigrationPhase phase) => phase >= VmMigrationPhase.HandingOver;

    /// <summary>
    /// Whether the disk was handed over to the destination by this phase (it holds it as primary, or did): from
    /// <see cref="VmMigrationPhase.HandedOver"/> on, except after a roll-back before the hand-over.
    /// </summary>
    public static bool DiskHandedOver(this VmMigrationPhase phase) =>
        phase is VmMigrationPhase.HandedOver or VmMigrationPhase.Confirming or VmMigrationPhase.TakingBack or VmMigrationPhase.Completed
            or VmMigrationPhase.HandedBack or VmMigrationPhase.Failed;

    /// <summary>
    /// Whether a migration in <paramref name="from"/> may move on to <paramref name="to"/>: forward only (the same phase
    /// again is no move), each outcome only from where it can come: rolled back while the source owns the roll-back,
    /// handed back after the taking back, failed once the destination decides, completed once QEMU finished after the
    /// hand-over. The one move out of an outcome is from completed to failed (the source QEMU's quit failing).
    /// </summary>
    public static bool CanMoveTo(this VmMigrationPhase from, VmMigrationPhase to) => to switch
    {
        _ when from.IsFinal() => from == VmMigrationPhase.Completed && to == VmMigrationPhase.Failed,
        VmMigrationPhase.RolledBack => from.RollbackOwner() == Migration.RollbackOwner.Source,
        VmMigrationPhase.HandedBack => from == VmMigrationPhase.TakingBack,
        VmMigrationPhase.Failed => from.RollbackOwner() == Migration.RollbackOwner.Destination,
        VmMigrationPhase.Completed => from is VmMigrationPhase.HandedOver or VmMigrationPhase.Confirming,
        _ => Enum.IsDefined(to) && to >= from,
    };

    /// <summary>Whether the migration is over (one way or the other).</summary>
    public static bool IsFinal(this VmMigrationPhase phase) => phase.RollbackOwner() == Migration.RollbackOwner.None;

    /// <summary>The phase's name in the control API (<see cref="VmMigrationPhases"/>, what `roam vm show` and the tests read).</summary>
    public static string ToWire(this VmMigrationPhase phase) => phase switch
    {
        VmMigrationPhase.Preparing or VmMigrationPhase.CopyingDisk => VmMigrationPhases.Disk,
        VmMigrationPhase.MigratingMemory => VmMigrationPhases.Memory,
        VmMigrationPhase.PausedForSwitchover or VmMigrationPhase.HandingOver or VmMigrationPhase.HandedOver => VmMigrationPhases.Switchover,
        VmMigrationPhase.Confirming or VmMigrationPhase.TakingBack => VmMigrationPhases.Confirming,
        VmMigrationPhase.Completed => VmMigrationPhases.Completed,
        VmMigrationPhase.RolledBack or VmMigrationPhase.HandedBack or VmMigrationPhase.Failed => VmMigrationPhases.Failed,
        _ => throw new ArgumentOutOfRangeException(nameof(phase), phase, null),
    };
}
