using Roam.Control;
using Roam.Daemon.Migration;

namespace Roam.Daemon.Tests;

/// <summary>The VM migration's rules as functions of its phase, over every phase.</summary>
public sealed class VmMigrationPhaseTests
{
    [Fact]
    public void Before_the_hand_over_took_place_the_source_rolls_back_from_then_on_the_destination_decides()
    {
        var expected = new Dictionary<VmMigrationPhase, RollbackOwner>
        {
            [VmMigrationPhase.Preparing] = RollbackOwner.Source,
            [VmMigrationPhase.CopyingDisk] = RollbackOwner.Source,
            [VmMigrationPhase.MigratingMemory] = RollbackOwner.Source,
            [VmMigrationPhase.PausedForSwitchover] = RollbackOwner.Source,
            // Under way: undone by the source only once it certainly did not promote the destination.
            [VmMigrationPhase.HandingOver] = RollbackOwner.Source,
            [VmMigrationPhase.HandedOver] = RollbackOwner.Destination,
            [VmMigrationPhase.Confirming] = RollbackOwner.Destination,
            [VmMigrationPhase.TakingBack] = RollbackOwner.Destination,
            [VmMigrationPhase.Completed] = RollbackOwner.None,
            [VmMigrationPhase.RolledBack] = RollbackOwner.None,
            [VmMigrationPhase.HandedBack] = RollbackOwner.None,
            [VmMigrationPhase.Failed] = RollbackOwner.None,
        };
        Assert.Equal(Enum.GetValues<VmMigrationPhase>().Order(), expected.Keys.Order());
        foreach (var (phase, owner) in expected) Assert.True(owner == phase.RollbackOwner(), $"{phase}: {phase.RollbackOwner()}, expected {owner}");
    }

    [Fact]
    public void The_relay_drains_from_the_start_of_the_hand_over_on()
    {
        foreach (var phase in Enum.GetValues<VmMigrationPhase>())
        {
            bool expected = phase is not (VmMigrationPhase.Preparing or VmMigrationPhase.CopyingDisk or VmMigrationPhase.MigratingMemory
                or VmMigrationPhase.PausedForSwitchover);
            Assert.True(expected == phase.RelayDrains(), $"{phase}");
        }
    }

    [Fact]
    public void Only_the_outcomes_are_final()
    {
        VmMigrationPhase[] final = [VmMigrationPhase.Completed, VmMigrationPhase.RolledBack, VmMigrationPhase.HandedBack, VmMigrationPhase.Failed];
        foreach (var phase in Enum.GetValues<VmMigrationPhase>()) Assert.True(final.Contains(phase) == phase.IsFinal(), $"{phase}");
    }

    [Fact]
    public void Every_phase_keeps_one_of_the_api_s_names()
    {
        string[] names = [VmMigrationPhases.Disk, VmMigrationPhases.Memory, VmMigrationPhases.Switchover, VmMigrationPhases.Confirming,
            VmMigrationPhases.Completed, VmMigrationPhases.Failed];
        foreach (var phase in Enum.GetValues<VmMigrationPhase>()) Assert.Contains(phase.ToWire(), names);
        Assert.Equal(VmMigrationPhases.Completed, VmMigrationPhase.Completed.ToWire());
        Assert.Equal(VmMigrationPhases.Failed, VmMigrationPhase.RolledBack.ToWire());
        Assert.Equal(VmMigrationPhases.Memory, VmMigrationPhase.MigratingMemory.ToWire());
    }

    [Fact]
    public void A_phase_outside_the_enum_is_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => ((VmMigrationPhase)99).RollbackOwner());
        Assert.Throws<ArgumentOutOfRangeException>(() => ((VmMigrationPhase)99).ToWire());
    }
}
