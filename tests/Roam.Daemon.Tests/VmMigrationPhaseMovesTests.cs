using Roam.Daemon.Migration;

namespace Roam.Daemon.Tests;

/// <summary>The moves a VM migration's source makes between phases (VmMigration.MoveTo refuses any other).</summary>
public sealed class VmMigrationPhaseMovesTests
{
    private static readonly VmMigrationPhase[] SourcePath =
    [
        VmMigrationPhase.Preparing, VmMigrationPhase.CopyingDisk, VmMigrationPhase.MigratingMemory, VmMigrationPhase.PausedForSwitchover,
        VmMigrationPhase.HandingOver, VmMigrationPhase.HandedOver, VmMigrationPhase.Confirming, VmMigrationPhase.Completed,
    ];

    [Fact]
    public void The_source_s_path_moves_forward_only()
    {
        for (int i = 1; i < SourcePath.Length; i++)
        {
            Assert.True(SourcePath[i - 1].CanMoveTo(SourcePath[i]), $"{SourcePath[i - 1]} -> {SourcePath[i]}");
            Assert.True(SourcePath[i] > SourcePath[i - 1], $"{SourcePath[i]} after {SourcePath[i - 1]}");
            for (int j = 0; j < i; j++) Assert.False(SourcePath[i].CanMoveTo(SourcePath[j]), $"{SourcePath[i]} -> {SourcePath[j]}");
        }
    }

    [Fact]
    public void A_confirmation_may_be_waited_for_or_not_and_the_disk_taken_back_only_after_the_hand_over()
    {
        Assert.True(VmMigrationPhase.HandedOver.CanMoveTo(VmMigrationPhase.Completed));
        Assert.True(VmMigrationPhase.HandedOver.CanMoveTo(VmMigrationPhase.TakingBack));
        Assert.True(VmMigrationPhase.Confirming.CanMoveTo(VmMigrationPhase.TakingBack));
        Assert.True(VmMigrationPhase.TakingBack.CanMoveTo(VmMigrationPhase.HandedBack));
        Assert.False(VmMigrationPhase.TakingBack.CanMoveTo(VmMigrationPhase.Completed));
        Assert.False(VmMigrationPhase.PausedForSwitchover.CanMoveTo(VmMigrationPhase.Completed));
        // The same phase again (the slow hand-over, the confirmation's repeated notes) is no move.
        Assert.True(VmMigrationPhase.HandedOver.CanMoveTo(VmMigrationPhase.HandedOver));
        Assert.True(VmMigrationPhase.Confirming.CanMoveTo(VmMigrationPhase.Confirming));
    }

    [Fact]
    public void Each_outcome_comes_only_from_where_its_rollback_owner_decides()
    {
        foreach (var from in Enum.GetValues<VmMigrationPhase>())
        {
            Assert.True(from.CanMoveTo(VmMigrationPhase.RolledBack) == (from.RollbackOwner() == RollbackOwner.Source), $"{from} -> RolledBack");
            Assert.True(from.CanMoveTo(VmMigrationPhase.Failed) == (from.RollbackOwner() == RollbackOwner.Destination || from == VmMigrationPhase.Completed),
                $"{from} -> Failed");
            Assert.True(from.CanMoveTo(VmMigrationPhase.HandedBack) == (from == VmMigrationPhase.TakingBack), $"{from} -> HandedBack");
        }
    }

    [Fact]
    public void Nothing_moves_out_of_an_outcome_but_a_completion_that_fails_after_all()
    {
        foreach (var from in Enum.GetValues<VmMigrationPhase>().Where(p => p.IsFinal()))
        foreach (var to in Enum.GetValues<VmMigrationPhase>())
            Assert.True(from.CanMoveTo(to) == (from == VmMigrationPhase.Completed && to == VmMigrationPhase.Failed), $"{from} -> {to}");
        Assert.False(VmMigrationPhase.Preparing.CanMoveTo((VmMigrationPhase)99));
    }

    [Fact]
    public void The_disk_is_handed_over_exactly_where_the_destination_decides_and_the_relay_drains_by_then()
    {
        foreach (var phase in Enum.GetValues<VmMigrationPhase>())
        {
            bool expected = phase.IsFinal()
                ? phase is not VmMigrationPhase.RolledBack
                : phase.RollbackOwner() == RollbackOwner.Destination;
            Assert.True(expected == phase.DiskHandedOver(), $"{phase}");
            if (phase.DiskHandedOver()) Assert.True(phase.RelayDrains(), $"{phase}: handed over but the relay does not drain");
        }
        // The relay drains before the hand-over can take place: from the phase it is under way in.
        Assert.True(VmMigrationPhase.HandingOver.RelayDrains());
        Assert.False(VmMigrationPhase.HandingOver.DiskHandedOver());
    }
}
