using System.Text.Json;

namespace Roam.Hypervisor.Qmp;

// One short typed method per QMP command Roam uses (Garnet's one-handler-per-command).
public sealed partial class QmpClient
{
    public Task<StatusInfo> QueryStatusAsync(CancellationToken ct = default) =>
        ExecuteAsync<StatusInfo>("query-status", null, ct);

    public Task<QmpVersionInfo> QueryVersionAsync(CancellationToken ct = default) =>
        ExecuteAsync<QmpVersionInfo>("query-version", null, ct);

    public Task<KvmInfo> QueryKvmAsync(CancellationToken ct = default) =>
        ExecuteAsync<KvmInfo>("query-kvm", null, ct);

    public Task<MigrationInfo> QueryMigrateAsync(CancellationToken ct = default) =>
        ExecuteAsync<MigrationInfo>("query-migrate", null, ct);

    public Task<MigrationCapabilityStatus[]> QueryMigrateCapabilitiesAsync(CancellationToken ct = default) =>
        ExecuteAsync<MigrationCapabilityStatus[]>("query-migrate-capabilities", null, ct);

    /// <summary>Sets capabilities, e.g. <c>(MigrationCapability.PauseBeforeSwitchover, true), (MigrationCapability.Events, true)</c>.
    /// Must run before migrate (and on the destination before migrate-incoming for those that need both sides).</summary>
    public Task MigrateSetCapabilitiesAsync(IEnumerable<MigrationCapabilityStatus> capabilities, CancellationToken ct = default) =>
        ExecuteAsync("migrate-set-capabilities", new MigrateSetCapabilitiesArguments([.. capabilities]), ct);

    public Task MigrateSetCapabilitiesAsync(params MigrationCapabilityStatus[] capabilities) =>
        MigrateSetCapabilitiesAsync(capabilities, CancellationToken.None);

    public Task MigrateSetParametersAsync(MigrationParameters parameters, CancellationToken ct = default) =>
        ExecuteAsync("migrate-set-parameters", parameters, ct);

    public Task<JsonElement> QueryMigrateParametersAsync(CancellationToken ct = default) =>
        ExecuteAsync("query-migrate-parameters", null, ct);

    /// <summary>Starts an outgoing migration to <paramref name="uri"/> ("tcp:host:port", "unix:/path"). Returns once started;
    /// follow it with MIGRATION events or <see cref="QueryMigrateAsync"/>.</summary>
    public Task MigrateAsync(string uri, CancellationToken ct = default) =>
        ExecuteAsync("migrate", new MigrateArguments(uri), ct);

    /// <summary>On a QEMU started with <c>-incoming defer</c>: listen on <paramref name="uri"/> for the migration stream.</summary>
    public Task MigrateIncomingAsync(string uri, CancellationToken ct = default) =>
        ExecuteAsync("migrate-incoming", new MigrateIncomingArguments(uri), ct);

    /// <summary>Releases a migration paused by pause-before-switchover.</summary>
    public Task MigrateContinueAsync(string state = MigrationStatus.PreSwitchover, CancellationToken ct = default) =>
        ExecuteAsync("migrate-continue", new MigrateContinueArguments(state), ct);

    public Task MigrateCancelAsync(CancellationToken ct = default) => ExecuteAsync("migrate_cancel", null, ct);

    public Task StopAsync(CancellationToken ct = default) => ExecuteAsync("stop", null, ct);

    public Task ContAsync(CancellationToken ct = default) => ExecuteAsync("cont", null, ct);

    public Task SystemPowerdownAsync(CancellationToken ct = default) => ExecuteAsync("system_powerdown", null, ct);

    /// <summary>Sends "quit". QEMU replies and then closes the monitor; a connection that closes
    /// before the reply arrives also counts as success.</summary>
    public async Task QuitAsync(CancellationToken ct = default)
    {
        try
        {
            await ExecuteAsync("quit", null, ct).ConfigureAwait(false);
        }
        catch (QmpConnectionClosedException)
        {
        }
    }

    public Task<BlockInfo[]> QueryBlockAsync(CancellationToken ct = default) =>
        ExecuteAsync<BlockInfo[]>("query-block", null, ct);

    /// <summary>Adds a block node reading the NBD export <paramref name="export"/> served on a Unix socket.</summary>
    public Task BlockdevAddNbdAsync(string nodeName, string socketPath, string export, bool readOnly = false, CancellationToken ct = default) =>
        ExecuteAsync("blockdev-add", new BlockdevAddNbdArguments(nodeName, NbdServerAddress.Unix(socketPath), export) { ReadOnly = readOnly ? true : null }, ct);

    public Task BlockdevDelAsync(string nodeName, CancellationToken ct = default) =>
        ExecuteAsync("blockdev-del", new BlockdevDelArguments(nodeName), ct);

    public Task DeviceAddAsync(DeviceAddArguments device, CancellationToken ct = default) =>
        ExecuteAsync("device_add", device, ct);

    public Task DeviceDelAsync(string id, CancellationToken ct = default) =>
        ExecuteAsync("device_del", new DeviceDelArguments(id), ct);

    /// <summary>Sets the link of NIC <paramref name="name"/> up or down: the guest sees its cable plugged or pulled.</summary>
    public Task SetLinkAsync(string name, bool up, CancellationToken ct = default) =>
        ExecuteAsync("set_link", new SetLinkArguments(name, up), ct);
}
