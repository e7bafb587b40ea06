using Roam.Storage.Tracking;

namespace Roam.Storage.Tests.Tracking;

public sealed class SyncDecisionTests
{
    [Fact]
    public void Same_generation_is_same()
    {
        var g = DataGenerations.New();
        Assert.Equal(SyncVerdict.Same, SyncDecision.Decide(g, g));
    }

    [Fact]
    public void A_side_that_moved_on_is_newer_and_the_other_stale()
    {
        var common = DataGenerations.New();
        var primary = common.Next();          // wrote while the replica was away
        Assert.Equal(SyncVerdict.LocalNewer, SyncDecision.Decide(primary, common));
        Assert.Equal(SyncVerdict.PeerNewer, SyncDecision.Decide(common, primary));
        Assert.Equal(SyncVerdict.LocalNewer, SyncDecision.Decide(primary.Next().Next(), common));
    }

    [Fact]
    public void Both_moving_on_from_a_common_ancestor_is_split_brain()
    {
        var common = DataGenerations.New();
        var oldPrimary = common.Next();       // kept writing with the link cut
        var promoted = common.Next();         // promote --force on the replica, then writes
        Assert.Equal(SyncVerdict.SplitBrain, SyncDecision.Decide(oldPrimary, promoted));
        Assert.Equal(SyncVerdict.SplitBrain, SyncDecision.Decide(promoted, oldPrimary));
    }

    [Fact]
    public void Unrelated_volumes_are_split_brain_never_merged()
    {
        Assert.Equal(SyncVerdict.SplitBrain, SyncDecision.Decide(DataGenerations.New(), DataGenerations.New()));
    }

    [Fact]
    public void History_is_bounded()
    {
        var g = DataGenerations.New();
        var first = g.Current;
        for (int i = 0; i < DataGenerations.HistoryLength + 3; i++) g = g.Next();
        Assert.Equal(DataGenerations.HistoryLength, g.History.Count);
        Assert.False(g.DescendsFrom(first));
    }
}
