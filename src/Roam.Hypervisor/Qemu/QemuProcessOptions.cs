using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Roam.Hypervisor.Qmp;

namespace Roam.Hypervisor.Qemu;

public sealed record QemuProcessOptions
{
    /// <summary>How long QEMU may take to open its QMP socket and greet us.</summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>Lines of stderr kept for <see cref="QemuExit.StderrTail"/>.</summary>
    public int StderrTailLines { get; init; } = 40;

    /// <summary>Serial lines kept for <see cref="QemuProcess.SerialLines"/> when nobody reads them; older ones are dropped.</summary>
    public int SerialLineCapacity { get; init; } = 4096;

    /// <summary>
    /// Null: QEMU is our child with piped stdio and dies with us in practice (its pipes do). A path: QEMU is started to
    /// outlive us, in its own session, with stdout and stderr in this file (truncated at start); see <see cref="QemuProcess"/>.
    /// </summary>
    public string? LogPath { get; init; }

    public QmpClientOptions Qmp { get; init; } = new();

    public ILogger Logger { get; init; } = NullLogger.Instance;
}
