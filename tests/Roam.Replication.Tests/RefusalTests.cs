using System.Reflection;
using Microsoft.Extensions.Logging;
using Roam.Replication.Engine;

namespace Roam.Replication.Tests;

/// <summary>What the engine refuses says why as a <see cref="ReplicationError"/> (the daemon maps it to an HTTP status).</summary>
public sealed class RefusalTests : ReplicationTestBase
{
    [Fact]
    public async Task Each_refusal_carries_its_reason()
    {
        await ReplicatedAsync(8 * MiB, ReplicaMode.Sync);
        var alpha = Primary.Service;
        var beta = Secondary.Service;

        await RefusedAsync(ReplicationError.UnknownPeer, () => alpha.AddReplicaAsync(Vol, "nobody", ReplicaMode.Sync));
        await RefusedAsync(ReplicationError.AlreadyReplicated, () => alpha.AddReplicaAsync(Vol, "beta", ReplicaMode.Sync));
        await RefusedAsync(ReplicationError.NotPrimary, () => beta.AddReplicaAsync(Vol, "alpha", ReplicaMode.Sync));
        await RefusedAsync(ReplicationError.NotReplica, () => alpha.PromoteAsync(Vol, force: false));
        await RefusedAsync(ReplicationError.NoSuchReplica, () => alpha.RemoveReplicaAsync(Vol, "nobody"));
        await RefusedAsync(ReplicationError.HasReplicas, () => alpha.ForgetVolumeAsync(Vol));
        await RefusedAsync(ReplicationError.NotPrimary, () => beta.ForgetVolumeAsync(Vol));
        await RefusedAsync(ReplicationError.NoMigration, () => Task.FromResult(alpha.GetMigration(Vol)));
        await RefusedAsync(ReplicationError.NoMigration, () => alpha.HandOverAsync(Vol));
        await RefusedAsync(ReplicationError.NoMigration, () => alpha.AbortMigrationAsync(Vol));
        await RefusedAsync(ReplicationError.NotPrimary, () => beta.PrepareMigrationAsync(Vol, "alpha"));
        await RefusedAsync(ReplicationError.UnknownPeer, () => alpha.ResolveAsync(Vol, "nobody"));
        await RefusedAsync(ReplicationError.NotPrimary, () => beta.ResolveAsync(Vol, "beta"));
        // Nothing refused changed anything.
        Assert.Equal(VolumeRole.Primary, alpha.GetStatus(Vol).Role);
        Assert.Equal(VolumeRole.Replica, beta.GetStatus(Vol).Role);
        await Primary.WaitInSyncAsync(Vol);
    }

    private static async Task RefusedAsync(ReplicationError reason, Func<Task> operation) =>
        Assert.Equal(reason, (await Assert.ThrowsAsync<ReplicationException>(operation)).Error);
}

public sealed class LogEventIdTests
{
    /// <summary>A log line is found by its EventId: two messages must never share one (the daemon's are checked by its own tests).</summary>
    [Fact]
    public void Every_event_id_of_the_layers_below_the_daemon_is_unique()
    {
        Assembly[] layers = [typeof(ReplicationService).Assembly, typeof(Storage.Volumes.VolumeStore).Assembly, typeof(Nbd.Server.INbdExportProvider).Assembly,
            typeof(Peers.Trust.TrustStore).Assembly];
        var messages = layers.SelectMany(a => a.GetTypes())
            .SelectMany(t => t.GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
            .Select(m => (Method: $"{m.DeclaringType!.Assembly.GetName().Name}: {m.Name}", Attribute: m.GetCustomAttribute<LoggerMessageAttribute>()))
            .Where(m => m.Attribute is not null)
            .ToList();
        Assert.NotEmpty(messages);
        var shared = messages.GroupBy(m => m.Attribute!.EventId).Where(g => g.Count() > 1)
            .Select(g => $"{g.Key}: {string.Join(", ", g.Select(m => m.Method))}");
        Assert.Empty(shared);
    }
}
