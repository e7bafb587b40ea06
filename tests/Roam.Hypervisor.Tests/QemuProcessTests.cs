using Roam.Hypervisor.Qemu;
using Roam.Hypervisor.Qmp;
using Roam.Testing;

namespace Roam.Hypervisor.Tests;

public class QemuProcessTests
{
    [ToolFact(TestQemu.Binary)]
    public async Task Start_then_QuitAsync_exits_cleanly_and_removes_the_socket()
    {
        var qemu = await TestQemu.StartMachineNoneAsync();
        var socket = qemu.QmpSocketPath;
        Assert.True(File.Exists(socket));
        var exit = await qemu.QuitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(0, exit.ExitCode);
        Assert.True(qemu.HasExited);
        await qemu.DisposeAsync();
        Assert.False(File.Exists(socket));
    }

    [ToolFact(TestQemu.Binary)]
    public async Task QuitAsync_kills_a_qemu_that_does_not_answer()
    {
        await using var qemu = await TestQemu.StartMachineNoneAsync();
        TestQemu.Signal(qemu.Pid, "STOP");
        var exit = await qemu.QuitAsync(TimeSpan.FromMilliseconds(300));
        Assert.Equal(128 + 9, exit.ExitCode);
    }

    [ToolFact(TestQemu.Binary)]
    public async Task KillAsync_reports_the_exit_and_fails_the_qmp_connection()
    {
        await using var qemu = await TestQemu.StartMachineNoneAsync();
        var exit = await qemu.KillAsync();
        Assert.Equal(128 + 9, exit.ExitCode);
        await qemu.Qmp.Closed.WaitAsync(TestQemu.Patience);
        await Assert.ThrowsAsync<QmpConnectionClosedException>(() => qemu.Qmp.QueryStatusAsync());
    }

    [ToolFact(TestQemu.Binary)]
    public async Task A_bad_option_fails_start_with_the_exit_code_and_stderr()
    {
        var line = new QemuCommandLine { Machine = "none" }.WithArguments("-no-such-option");
        var ex = await Assert.ThrowsAsync<QemuExitedException>(() => QemuProcess.StartAsync(line));
        Assert.NotEqual(0, ex.Exit.ExitCode);
        Assert.Contains("no-such-option", ex.Exit.StderrTail);
    }

    [ToolFact(TestQemu.Binary)]
    public async Task Serial_stdio_lines_are_readable_and_complete_on_exit()
    {
        // No guest prints anything without a kernel, so check the plumbing: the channel completes when QEMU exits.
        await using var qemu = await QemuProcess.StartAsync(new QemuCommandLine { Machine = "none" }.WithSerialStdio());
        await qemu.QuitAsync(TimeSpan.FromSeconds(5));
        using var cts = new CancellationTokenSource(TestQemu.Patience);
        await foreach (var _ in qemu.SerialLines.ReadAllAsync(cts.Token)) { }
    }

    [Fact]
    public void Command_line_has_the_nbd_blockdev_and_virtio_device_in_qemu_7_syntax()
    {
        var args = new QemuCommandLine { QmpSocketPath = "/tmp/q,1.sock", Machine = "q35", Accelerator = Accelerator.Kvm, MemoryMiB = 512, Cpus = 2 }
            .WithNbdDisk("/run/roam/nbd.sock", "vol1")
            .WithIncomingDefer()
            .WithSerialFile("/tmp/serial.log")
            .Build();
        var text = string.Join(' ', args);
        Assert.Contains("-nodefaults", args);
        Assert.Contains("-display none", text);
        Assert.Contains("-accel kvm", text);
        Assert.Contains("-m 512 -smp 2", text);
        Assert.Contains("-qmp unix:/tmp/q,,1.sock,server=on,wait=off", text);
        Assert.Contains("-blockdev driver=nbd,server.type=unix,server.path=/run/roam/nbd.sock,export=vol1,node-name=disk0", text);
        Assert.Contains("-device virtio-blk-pci,drive=disk0,id=disk0-dev", text);
        Assert.Contains("-incoming defer", text);
        Assert.Contains("-serial file:/tmp/serial.log", text);
    }

    [ToolFact(TestQemu.Binary)]
    public async Task Nbd_disk_command_line_is_accepted_by_qemu()
    {
        // Check the syntax without an NBD server: QEMU parses -blockdev, then fails to connect, naming the socket.
        var line = new QemuCommandLine { Machine = "pc", MemoryMiB = 32 }.WithNbdDisk("/tmp/roam-no-such-nbd.sock", "vol1");
        var ex = await Assert.ThrowsAsync<QemuExitedException>(() => QemuProcess.StartAsync(line));
        Assert.Contains("roam-no-such-nbd.sock", ex.Exit.StderrTail);
        Assert.DoesNotContain("Invalid parameter", ex.Exit.StderrTail);
    }
}
