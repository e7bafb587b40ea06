using System.Globalization;

namespace Roam.Hypervisor.Qemu;

public enum Accelerator
{
    Tcg,
    Kvm,
}

/// <summary>
/// Builds a qemu-system-x86_64 argument list. Always headless and explicit: -nodefaults, -no-user-config,
/// -display none, and a QMP socket (-qmp unix:PATH,server=on,wait=off) that <see cref="QemuProcess"/> connects to.
/// Fluent and mutable; <see cref="Build"/> snapshots it.
/// </summary>
public sealed class QemuCommandLine
{
    private readonly List<string> _drives = [];
    private readonly List<string> _extra = [];

    public string Binary { get; set; } = "qemu-system-x86_64";
    public string Machine { get; set; } = "q35";
    public Accelerator Accelerator { get; set; } = Accelerator.Tcg;
    public int MemoryMiB { get; set; } = 256;
    public int Cpus { get; set; } = 1;
    public string? Name { get; set; }
    public string? QmpSocketPath { get; set; }
    public string? KernelPath { get; set; }
    public string? InitrdPath { get; set; }
    public string? KernelAppend { get; set; }

    /// <summary>null: no serial port. "stdio": the guest's ttyS0 on QEMU's stdout (read with <see cref="QemuProcess.SerialLines"/>).
    /// Anything else is passed to -serial as is (e.g. "file:/path").</summary>
    public string? Serial { get; set; }

    /// <summary>When set, the guest's ttyS0 is a chardev socket client of this unix socket (reconnecting every second:
    /// whoever listens there may restart), instead of <see cref="Serial"/>.</summary>
    public string? SerialSocketPath { get; set; }

    /// <summary>"defer" waits for migrate-incoming over QMP; null starts the guest normally.</summary>
    public string? Incoming { get; set; }

    public QemuCommandLine WithMachine(string machine) { Machine = machine; return this; }
    public QemuCommandLine WithAccelerator(Accelerator accelerator) { Accelerator = accelerator; return this; }
    public QemuCommandLine WithMemory(int mib) { MemoryMiB = mib; return this; }
    public QemuCommandLine WithCpus(int cpus) { Cpus = cpus; return this; }
    public QemuCommandLine WithName(string name) { Name = name; return this; }
    public QemuCommandLine WithQmpSocket(string path) { QmpSocketPath = path; return this; }
    public QemuCommandLine WithSerialStdio() { Serial = "stdio"; return this; }
    public QemuCommandLine WithSerialFile(string path) { Serial = "file:" + path; return this; }
    /// <summary>The serial console as a (reconnecting) client of a unix socket; <paramref name="logFile"/> gets every byte
    /// too, written by QEMU itself, so it is complete even while nobody listens on the socket.</summary>
    public QemuCommandLine WithSerialSocket(string path, string? logFile = null) { SerialSocketPath = path; SerialLogPath = logFile; Serial = null; return this; }

    public string? SerialLogPath { get; set; }
    public QemuCommandLine WithIncomingDefer() { Incoming = "defer"; return this; }

    public QemuCommandLine WithKernel(string kernel, string? initrd = null, string? append = null)
    {
        KernelPath = kernel;
        InitrdPath = initrd;
        KernelAppend = append;
        return this;
    }

    /// <summary>
    /// A disk backed by an NBD export on a Unix socket (QEMU 7.2 -blockdev dotted-key syntax):
    /// <c>-blockdev driver=nbd,server.type=unix,server.path=P,export=E,node-name=N -device virtio-blk-pci,drive=N,id=N-dev</c>.
    /// With <paramref name="reconnectDelaySeconds"/> (the nbd driver's reconnect-delay, QEMU 4.2+), a lost connection
    /// is retried (QEMU backs off 1, 2, 4, 8, then every 16 s) and guest requests wait that many seconds for it before
    /// they fail; without it they fail at once.
    /// </summary>
    public QemuCommandLine WithNbdDisk(string socketPath, string export, string nodeName = "disk0", bool readOnly = false, uint? reconnectDelaySeconds = null)
    {
        _drives.Add("-blockdev");
        _drives.Add($"driver=nbd,server.type=unix,server.path={Escape(socketPath)},export={Escape(export)},node-name={nodeName}"
                    + (readOnly ? ",read-only=on" : "")
                    + (reconnectDelaySeconds is { } delay ? $",reconnect-delay={delay.ToString(CultureInfo.InvariantCulture)}" : ""));
        _drives.Add("-device");
        _drives.Add($"virtio-blk-pci,drive={nodeName},id={nodeName}-dev");
        return this;
    }

    /// <summary>The id of the NIC <see cref="WithTapNic"/> adds, for QMP's set_link.</summary>
    public const string NicId = "nic0";

    /// <summary>
    /// A virtio-net NIC on an existing tap (<c>-netdev tap,ifname=T,script=no,downscript=no -device virtio-net-pci,mac=M</c>):
    /// the tap is made and bridged by the caller. No option ROM (romfile=): the guest boots from its disk or -kernel, and a
    /// PXE ROM would be 256 KiB more memory for every migration to carry.
    /// </summary>
    public QemuCommandLine WithTapNic(string tap, string mac)
    {
        _drives.AddRange(["-netdev", $"tap,id=net0,ifname={Escape(tap)},script=no,downscript=no",
            "-device", $"virtio-net-pci,id={NicId},netdev=net0,mac={Escape(mac)},romfile="]);
        return this;
    }

    /// <summary>Arguments appended verbatim.</summary>
    public QemuCommandLine WithArguments(params string[] arguments) { _extra.AddRange(arguments); return this; }

    public IReadOnlyList<string> Build()
    {
        if (QmpSocketPath is null) throw new InvalidOperationException("QmpSocketPath is not set");
        var args = new List<string>
        {
            "-nodefaults", "-no-user-config", "-display", "none",
            "-machine", Machine,
            "-accel", Accelerator == Accelerator.Kvm ? "kvm" : "tcg",
            "-qmp", $"unix:{Escape(QmpSocketPath)},server=on,wait=off",
        };
        if (Machine != "none")
        {
            args.AddRange(["-m", MemoryMiB.ToString(CultureInfo.InvariantCulture), "-smp", Cpus.ToString(CultureInfo.InvariantCulture)]);
        }
        if (Name is not null) args.AddRange(["-name", Escape(Name)]);
        if (KernelPath is not null) args.AddRange(["-kernel", KernelPath]);
        if (InitrdPath is not null) args.AddRange(["-initrd", InitrdPath]);
        if (KernelAppend is not null) args.AddRange(["-append", KernelAppend]);
        if (SerialSocketPath is not null)
            args.AddRange(["-chardev", $"socket,id=serial0,path={Escape(SerialSocketPath)},reconnect=1"
                + (SerialLogPath is null ? "" : $",logfile={Escape(SerialLogPath)},logappend=off"), "-serial", "chardev:serial0"]);
        else if (Serial is not null) args.AddRange(["-serial", Serial]);
        if (Incoming is not null) args.AddRange(["-incoming", Incoming]);
        args.AddRange(_drives);
        args.AddRange(_extra);
        return args;
    }

    /// <summary>QEMU option values escape a comma by doubling it.</summary>
    private static string Escape(string value) => value.Replace(",", ",,", StringComparison.Ordinal);

    public override string ToString() => Binary + " " + string.Join(' ', QmpSocketPath is null ? _extra : Build());
}
