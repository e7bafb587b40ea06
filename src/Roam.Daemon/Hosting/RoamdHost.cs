using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.Logging;
using Roam.Control;
using Roam.Daemon.Api;
using Roam.Daemon.Jobs;
using Roam.Nbd.Server;
using Roam.Replication.Engine;
using Roam.Peers.Identity;
using Roam.Peers.Trust;
using Roam.Storage.Volumes;

namespace Roam.Daemon.Hosting;

/// <summary>
/// roamd's life: the data-dir lock first (one daemon per dir), then the host with the volume store,
/// NBD and the control API on DATA_DIR/control.sock; on SIGTERM/SIGINT everything stops in order,
/// the sockets are removed and the lock is released last.
/// </summary>
internal static class RoamdHost
{
    public const int Failure = 1;

    public static async Task<int> RunAsync(RoamdOptions options, CancellationToken cancellationToken)
    {
        DataDirLock dirLock;
        try { dirLock = DataDirLock.Acquire(options.DataDir); }
        catch (VolumeException ex) when (ex.Error == VolumeError.DataDirLocked)
        {
            await Console.Error.WriteLineAsync($"roamd: {ex.Message}").ConfigureAwait(false);
            return Failure;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            await Console.Error.WriteLineAsync($"roamd: cannot use data dir {options.DataDir}: {ex.Message}").ConfigureAwait(false);
            return Failure;
        }

        using (dirLock)
        {
            try
            {
                // The lock makes any socket file here a leftover of a roamd that died.
                DeleteSocket(options.ControlSocket);
                await using var app = Build(options);
                app.Services.GetRequiredService<VolumeStore>(); // crash recovery runs now, before anything listens
                app.Services.GetRequiredService<ReplicationService>(); // identity and trusted peers are loaded (or refused) before anything listens
                // VMs left running by an earlier roamd get their disk exports right as soon as NBD listens.
                app.Services.GetRequiredService<Roam.Daemon.Vms.VmService>().PrepareStart();
                await app.RunAsync().ConfigureAwait(false);
                return 0;
            }
            catch (Exception ex)
            {
                await Console.Error.WriteLineAsync($"roamd: {JobManager.OneLine(ex.Message)}").ConfigureAwait(false);
                return Failure;
            }
            finally
            {
                DeleteSocket(options.ControlSocket);
                DeleteSocket(options.NbdSocket);
            }
        }
    }

    private static WebApplication Build(RoamdOptions options)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            Args = [],
            // Not the working directory: an appsettings.json lying there must not configure the daemon.
            ContentRootPath = AppContext.BaseDirectory,
        });

        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "yyyy-MM-dd HH:mm:ss.fff ";
        });
        builder.Logging.SetMinimumLevel(LogLevel.Information);
        builder.Logging.AddFilter("Microsoft", LogLevel.Warning);
        builder.Logging.AddFilter("Microsoft.Extensions.Hosting", LogLevel.None); // startup failures are reported once, by RoamdHost

        builder.WebHost.ConfigureKestrel(kestrel => kestrel.ListenUnixSocket(options.ControlSocket));

        var services = builder.Services;
        services.AddSingleton(options);
        services.AddSingleton(sp => new VolumeStore(options.DataDir, sp.GetRequiredService<ILoggerFactory>().CreateLogger("Roam.Storage")));
        services.AddSingleton(sp =>
        {
            var identity = HostIdentity.LoadOrCreate(options.DataDir, options.HostName);
            Log.Identity(sp.GetRequiredService<ILoggerFactory>().CreateLogger("Roam.Daemon"), identity.Name, identity.Fingerprint.ToString(),
                identity.WasCreated ? "created" : "loaded", identity.Path);
            return identity;
        });
        services.AddSingleton(_ => TrustStore.Open(options.DataDir));
        services.AddSingleton(sp => new ReplicationService(sp.GetRequiredService<HostIdentity>(), sp.GetRequiredService<TrustStore>(),
            sp.GetRequiredService<VolumeStore>(), options.DataDir, sp.GetRequiredService<ILoggerFactory>(),
            new ReplicationOptions { SyncTimeout = options.SyncTimeout, Compression = options.Compression }));
        // Every volume is served through replication: a replicated primary's writes reach its replicas, a replica is read-only.
        services.AddSingleton(sp => new NbdServer(Exports.VolumeExports.For(sp.GetRequiredService<VolumeStore>(), sp.GetRequiredService<ReplicationService>()), new NbdServerOptions(),
            sp.GetRequiredService<ILoggerFactory>().CreateLogger("Roam.Nbd")));
        services.AddSingleton<NbdEndpoints>();
        services.AddSingleton<JobManager>();
        services.AddSingleton<QemuImg>();
        services.AddSingleton<TransferService>();
        services.AddHostedService<DaemonService>();
        // After DaemonService: VMs start once NBD serves, and stop (cleanly) before NBD does.
        services.AddSingleton(sp => new Network.VmNetworks(options.DataDir,
            new Network.HostVmNetwork(options.DataDir, sp.GetRequiredService<HostIdentity>().Fingerprint.ToString(), options.VmSubnet),
            sp.GetRequiredService<ILoggerFactory>().CreateLogger("Roam.Daemon.Network")));
        services.AddSingleton<Roam.Daemon.Vms.VmService>();
        services.AddHostedService(sp => sp.GetRequiredService<Roam.Daemon.Vms.VmService>());
        services.Configure<JsonOptions>(o => o.SerializerOptions.TypeInfoResolverChain.Insert(0, ControlJsonContext.Default));
        services.Configure<RouteHandlerOptions>(o => o.ThrowOnBadRequest = true); // bad bodies reach ErrorHandling as exceptions

        var app = builder.Build();
        app.UseControlApiErrors();
        app.UseStatusCodePages(ErrorHandling.WriteStatusAsync); // 404/405/415 from routing get a JSON reason too
        app.MapHostEndpoints();
        app.MapVolumeEndpoints();
        app.MapJobEndpoints();
        app.MapReplicationEndpoints();
        app.MapMigrationEndpoints();
        app.MapVmEndpoints();
        return app;
    }

    private static void DeleteSocket(string path)
    {
        try { File.Delete(path); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { }
    }
}
