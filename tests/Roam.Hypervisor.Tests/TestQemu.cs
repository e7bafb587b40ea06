using Roam.Hypervisor.Qemu;
using Roam.Testing;

namespace Roam.Hypervisor.Tests;

/// <summary>Starts real QEMUs for the tests; -machine none starts in milliseconds with no guest.</summary>
internal static class TestQemu
{
    public const string Binary = "qemu-system-x86_64";

    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

    public static Task<QemuProcess> StartMachineNoneAsync(QemuProcessOptions? options = null)
    {
        Requires.Tool(Binary);
        return QemuProcess.StartAsync(new QemuCommandLine { Machine = "none" }, options);
    }

    /// <summary>A small PC with no disk and no kernel: the BIOS finds nothing to boot and spins, which is enough to migrate.</summary>
    public static Task<QemuProcess> StartBarePcAsync(bool incomingDefer = false)
    {
        Requires.Tool(Binary);
        var line = new QemuCommandLine { Machine = "pc", MemoryMiB = 32, Accelerator = Accelerator.Tcg };
        if (incomingDefer) line.WithIncomingDefer();
        return QemuProcess.StartAsync(line);
    }

    public static void Signal(int pid, string signal)
    {
        using var kill = System.Diagnostics.Process.Start("kill", ["-" + signal, pid.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
        Assert.Equal(0, kill.ExitCode);
    }
}
