namespace Roam.Hypervisor.Qemu;

/// <summary>
/// How a QEMU process ended: its exit code (128 + signal when killed; <see cref="UnknownExitCode"/> when it was not
/// our child, so nobody told us) and the last lines it wrote to stderr.
/// </summary>
public sealed record QemuExit(int ExitCode, string StderrTail)
{
    public const int UnknownExitCode = -1;

    public bool ExitCodeKnown => ExitCode != UnknownExitCode;
}

/// <summary>QEMU exited while we needed it (during start-up, before its QMP socket answered).</summary>
public sealed class QemuExitedException(QemuExit exit, string message) : IOException($"{message} (exit code {exit.ExitCode}): {exit.StderrTail}")
{
    public QemuExit Exit { get; } = exit;
}
