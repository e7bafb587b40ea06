using System.CommandLine;

namespace Roam.Daemon.Hosting;

/// <summary>roamd's options: --data-dir, --config, --nbd-listen, --host-name, --peer-listen, --sync-timeout, --compression. The command line wins over the config file.</summary>
internal sealed class RoamdCommandLine
{
    public const int UsageError = 2;

    private readonly Option<string?> _dataDir = new("--data-dir")
    {
        Description = $"Directory holding the volumes, the lock and the sockets (default {RoamdOptions.DefaultDataDir})",
        HelpName = "DIR",
    };

    private readonly Option<string?> _config = new("--config")
    {
        Description = "JSON file with the same settings as keys (\"dataDir\", \"nbdListen\", \"hostName\", \"peerListen\", \"syncTimeout\"); the command line wins",
        HelpName = "FILE",
    };

    private readonly Option<string?> _nbdListen = new("--nbd-listen")
    {
        Description = $"Also serve NBD over TCP on ADDR[:PORT] (port {RoamdOptions.DefaultNbdPort} if omitted). Without it, NBD is served only on DATA_DIR/nbd.sock",
        HelpName = "ADDR:PORT",
    };

    private readonly Option<string?> _hostName = new("--host-name")
    {
        Description = "This host's name in its replication identity, used only when the identity is first created (default: the machine's host name)",
        HelpName = "NAME",
    };

    private readonly Option<string?> _peerListen = new("--peer-listen")
    {
        Description = $"Accept replication from trusted peers on ADDR[:PORT] (port {RoamdOptions.DefaultPeerPort} if omitted; 0 picks a free one). Without it, this host replicates out but holds no replicas",
        HelpName = "ADDR:PORT",
    };

    private readonly Option<double?> _syncTimeout = new("--sync-timeout")
    {
        Description = $"Seconds a write waits for a sync replica before that replica is marked out of sync (default {RoamdOptions.DefaultSyncTimeoutSeconds:0})",
        HelpName = "SECONDS",
    };

    private readonly Option<string?> _compression = new("--compression")
    {
        Description = "auto: LZ4 on replication writes that compress (incompressible data is detected and sent as it is); off: never (default auto)",
        HelpName = "auto|off",
    };

    private readonly Option<string?> _vmNetwork = new("--vm-network")
    {
        Description = "The network a VM gets when `roam vm create` names none: default (this host's own VM network: a bridge, DHCP, NAT; needs root) " +
                      "or none (default: default when roamd runs as root, none otherwise)",
        HelpName = "default|none",
    };

    private readonly Option<string?> _vmSubnet = new("--vm-subnet")
    {
        Description = "The default VM network's IPv4 subnet (default: a /24 in 10.128.0.0/10 chosen from this host's identity, so that hosts differ; see roam host id)",
        HelpName = "CIDR",
    };

    public RootCommand Root { get; }

    public RoamdCommandLine(Func<RoamdOptions, CancellationToken, Task<int>> run)
    {
        Root = new RootCommand("roamd: keeps this host's volumes in sparse files and serves them over NBD; `roam` drives it through DATA_DIR/control.sock. " +
            "VMs outlive roamd: on SIGTERM (or kill -9) their QEMUs keep running, their disk requests wait for the next roamd on the same " +
            "data dir, which takes them over (a VM whose QEMU died meanwhile is cold-started). `roam vm stop` stops a VM. " +
            "Under systemd use KillMode=process.")
        {
            _dataDir, _config, _nbdListen, _hostName, _peerListen, _syncTimeout,
            _compression, _vmNetwork, _vmSubnet,
        };
        Root.SetAction(async (parseResult, cancellationToken) =>
        {
            RoamdOptions options;
            try { options = Resolve(parseResult); }
            catch (RoamdUsageException ex)
            {
                await Console.Error.WriteLineAsync($"roamd: {ex.Message}").ConfigureAwait(false);
                return UsageError;
            }
            return await run(options, cancellationToken).ConfigureAwait(false);
        });
    }

    public async Task<int> InvokeAsync(string[] args)
    {
        var parseResult = Root.Parse(args);
        if (parseResult.Errors.Count > 0)
        {
            foreach (var error in parseResult.Errors) await Console.Error.WriteLineAsync($"roamd: {error.Message}").ConfigureAwait(false);
            await Console.Error.WriteLineAsync("Run 'roamd --help' for usage.").ConfigureAwait(false);
            return UsageError;
        }
        // The generic host handles SIGTERM/SIGINT itself, so System.CommandLine must not race it for them.
        return await parseResult.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null }).ConfigureAwait(false);
    }

    private RoamdOptions Resolve(ParseResult parseResult)
    {
        var configPath = parseResult.GetValue(_config);
        var config = configPath is null ? new RoamdConfigFile(null, null) : RoamdConfigFile.Load(configPath);
        var dataDirText = parseResult.GetValue(_dataDir);
        if (dataDirText is not null && string.IsNullOrWhiteSpace(dataDirText)) throw new RoamdUsageException("--data-dir must not be empty");
        var dataDir = dataDirText is not null ? Path.GetFullPath(dataDirText) : config.DataDir ?? RoamdOptions.DefaultDataDir;
        var listenText = parseResult.GetValue(_nbdListen) ?? config.NbdListen;
        System.Net.IPEndPoint? listen = null;
        if (listenText is not null && !RoamdOptions.TryParseListen(listenText, out listen))
            throw new RoamdUsageException($"invalid NBD listen address '{listenText}': use ADDR[:PORT], e.g. 127.0.0.1:{RoamdOptions.DefaultNbdPort}");
        var options = new RoamdOptions(dataDir, listen);

        var hostName = parseResult.GetValue(_hostName) ?? config.HostName;
        if (hostName is not null)
        {
            int max = Roam.Peers.Protocol.PeerProtocol.MaxHostNameLength;
            if (string.IsNullOrWhiteSpace(hostName) || hostName.Any(char.IsControl) || System.Text.Encoding.UTF8.GetByteCount(hostName.Trim()) > max)
                throw new RoamdUsageException($"invalid host name '{hostName}': use 1 to {max} bytes, no control characters");
            options = options with { HostName = hostName.Trim() };
        }

        var peerText = parseResult.GetValue(_peerListen) ?? config.PeerListen;
        if (peerText is not null)
        {
            if (!RoamdOptions.TryParseListen(peerText, out var peer, RoamdOptions.DefaultPeerPort))
                throw new RoamdUsageException($"invalid peer listen address '{peerText}': use ADDR[:PORT], e.g. 0.0.0.0:{RoamdOptions.DefaultPeerPort}");
            options = options with { PeerListen = peer };
        }

        var syncTimeout = parseResult.GetValue(_syncTimeout) ?? config.SyncTimeout;
        if (syncTimeout is { } seconds)
        {
            if (!double.IsFinite(seconds) || seconds <= 0 || seconds > 3600)
                throw new RoamdUsageException($"invalid sync timeout {seconds}: use a number of seconds above 0 and at most 3600");
            options = options with { SyncTimeout = TimeSpan.FromSeconds(seconds) };
        }
        var compression = parseResult.GetValue(_compression) ?? config.Compression;
        if (compression is not null)
        {
            options = options with
            {
                Compression = compression.Trim().ToLowerInvariant() switch
                {
                    "auto" => Roam.Replication.Engine.WireCompression.Auto,
                    "off" => Roam.Replication.Engine.WireCompression.Off,
                    _ => throw new RoamdUsageException($"invalid compression '{compression}': use auto or off"),
                },
            };
        }
        var vmNetwork = parseResult.GetValue(_vmNetwork);
        if (vmNetwork is not null)
        {
            vmNetwork = vmNetwork.Trim();
            if (vmNetwork is not (Network.VmNic.DefaultNetwork or Network.VmNic.NoNetwork))
                throw new RoamdUsageException($"invalid --vm-network '{vmNetwork}': use default or none");
            options = options with { VmNetwork = vmNetwork };
        }
        var vmSubnet = parseResult.GetValue(_vmSubnet);
        if (vmSubnet is not null)
        {
            try
            {
                options = options with { VmSubnet = Network.Ipv4Subnet.Parse(vmSubnet.Trim()) };
                // Refused before anything is set up: a VM network on a subnet the host already reaches would hide it.
                new Network.HostVmNetwork(dataDir, "", options.VmSubnet).CheckConfigured();
            }
            catch (Network.NetworkException ex) { throw new RoamdUsageException(ex.Message); }
        }
        return options;
    }
}
