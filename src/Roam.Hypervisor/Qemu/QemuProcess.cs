using System.Diagnostics;
using System.Net.Sockets;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Roam.Hypervisor.Qmp;

namespace Roam.Hypervisor.Qemu;

/// <summary>
/// One supervised qemu-system-x86_64: started from a <see cref="QemuCommandLine"/>, connected over QMP,
/// with its stderr tail kept for diagnostics and (with -serial stdio) the guest's serial output
/// readable line by line. <see cref="Exited"/> completes when the process ends, however it ends.
/// Disposing kills QEMU if it still runs and removes the QMP socket.
/// <para>
/// With <see cref="QemuProcessOptions.LogPath"/> QEMU is started to outlive this process (a daemon restart must not
/// take its VMs down): in a session of its own (setsid, so a signal to our process group or terminal never reaches
/// it), stdin from /dev/null and stdout/stderr into that file instead of pipes that would die with us.
/// <see cref="DetachAsync"/> then lets go of it without killing it, and a later process takes it over with
/// <see cref="AttachAsync"/> (QMP reconnected; its exit seen from /proc since it is no longer our child, so its exit
/// code is unknown: <see cref="QemuExit.UnknownExitCode"/>).
/// </para>
/// </summary>
public sealed class QemuProcess : IAsyncDisposable
{
    private readonly Process? _process; // null for a QEMU taken over with AttachAsync (not our child)
    private readonly ProcessIdentity _identity;
    private readonly QemuProcessOptions _options;
    private readonly CancellationTokenSource _detached = new();
    private readonly ILogger _logger;
    private readonly string _socketPath;
    private readonly bool _ownsSocketPath;
    private readonly Queue<string> _stderrTail = new();
    private readonly Channel<string> _serial;
    private readonly TaskCompletionSource<QemuExit> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private QmpClient? _qmp;

    private QemuProcess(Process? process, ProcessIdentity identity, string socketPath, bool ownsSocketPath, QemuProcessOptions options)
    {
        _process = process;
        _identity = identity;
        _socketPath = socketPath;
        _ownsSocketPath = ownsSocketPath;
        _options = options;
        _logger = options.Logger;
        _serial = Channel.CreateBounded<string>(new BoundedChannelOptions(options.SerialLineCapacity)
        {
            FullMode = BoundedChannelFullMode.DropOldest,
            SingleWriter = true,
        });
    }

    public int Pid => _identity.Pid;

    /// <summary>Pid, start time and boot: what a later process needs to find this QEMU again (<see cref="AttachAsync"/>).</summary>
    public ProcessIdentity Identity => _identity;

    /// <summary>Where QEMU's stdout and stderr go when it runs detached (<see cref="QemuProcessOptions.LogPath"/>), else null.</summary>
    public string? LogPath => _options.LogPath;

    public string QmpSocketPath => _socketPath;

    /// <summary>The QMP connection, ready (capabilities negotiated) once <see cref="StartAsync"/> returns.</summary>
    public QmpClient Qmp => _qmp ?? throw new InvalidOperationException("QEMU is not started");

    /// <summary>Completes when QEMU has exited, with its exit code and stderr tail. Never faults.</summary>
    public Task<QemuExit> Exited => _exited.Task;

    public bool HasExited => _exited.Task.IsCompleted;

    /// <summary>Guest serial output line by line (only with -serial stdio). Completes when QEMU exits.</summary>
    public ChannelReader<string> SerialLines => _serial.Reader;

    public string StderrTail
    {
        get
        {
            if (_options.LogPath is { } log) return ReadTail(log, _options.StderrTailLines);
            lock (_stderrTail) return string.Join('\n', _stderrTail);
        }
    }

    /// <summary>The last <paramref name="lines"/> lines of a file QEMU may still be writing ("" if it is missing).</summary>
    public static string ReadTail(string path, int lines)
    {
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            const int MaxBytes = 16 * 1024;
            if (stream.Length > MaxBytes) stream.Seek(-MaxBytes, SeekOrigin.End);
            var text = new StreamReader(stream).ReadToEnd();
            var all = text.Replace("\r", "", StringComparison.Ordinal).Split('\n', StringSplitOptions.RemoveEmptyEntries);
            return string.Join('\n', all.TakeLast(lines));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return ""; }
    }

    /// <summary>Starts QEMU and connects to its QMP socket (a fresh one under /tmp unless the command line names one).</summary>
    /// <exception cref="QemuExitedException">QEMU exited during start-up (bad option, KVM unavailable...).</exception>
    /// <exception cref="TimeoutException">QMP did not answer within <see cref="QemuProcessOptions.StartTimeout"/>.</exception>
    public static async Task<QemuProcess> StartAsync(QemuCommandLine commandLine, QemuProcessOptions? options = null, CancellationToken ct = default)
    {
        options ??= new QemuProcessOptions();
        var ownsSocket = commandLine.QmpSocketPath is null;
        // Unix socket paths are limited to 108 bytes, so keep it short and in /tmp.
        commandLine.QmpSocketPath ??= Path.Combine("/tmp", $"roam-qmp-{Guid.NewGuid():N}.sock");
        var socketPath = commandLine.QmpSocketPath;
        TryDelete(socketPath);

        ProcessStartInfo startInfo;
        if (options.LogPath is { } log)
        {
            // sh only redirects and execs setsid, which calls setsid() and execs QEMU without forking (it forks only when
            // its caller leads a process group, and .NET forks its children without setpgid): one process throughout,
            // so the pid we get is QEMU's.
            // No PR_SET_PDEATHSIG anywhere, and every descriptor of ours is close-on-exec (the data-dir lock included).
            startInfo = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
            foreach (var arg in (string[])["-c", "log=$1; shift; exec setsid -- \"$@\" </dev/null >\"$log\" 2>&1", "roam-qemu", log, commandLine.Binary])
                startInfo.ArgumentList.Add(arg);
        }
        else
        {
            startInfo = new ProcessStartInfo(commandLine.Binary)
            {
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
        }
        foreach (var arg in commandLine.Build()) startInfo.ArgumentList.Add(arg);

        var process = new Process { StartInfo = startInfo };
        if (!process.Start()) throw new InvalidOperationException($"Could not start {commandLine.Binary}");
        // Read at once: the pid cannot be reused before we reap it, so this start time is QEMU's (sh's until the exec,
        // which keeps it). Null only if it already exited and was reaped, which Supervise reports.
        var identity = ProcessIdentity.Of(process.Id) ?? new ProcessIdentity(process.Id, 0, ProcessIdentity.CurrentBootId() ?? "");
        var qemu = new QemuProcess(process, identity, socketPath, ownsSocket, options);
        Log.QemuStarted(qemu._logger, process.Id, commandLine.ToString());
        qemu.Supervise();

        try
        {
            qemu._qmp = await qemu.ConnectQmpAsync(ct).ConfigureAwait(false);
            return qemu;
        }
        catch
        {
            await qemu.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Takes over a QEMU started (with <see cref="QemuProcessOptions.LogPath"/>) by an earlier process: checks that
    /// <paramref name="identity"/> still runs with <paramref name="qmpSocketPath"/> on its command line (so a reused pid
    /// is never mistaken for it) and reconnects QMP. Its exit is then noticed from /proc (and QMP closing).
    /// </summary>
    /// <exception cref="QemuExitedException">It is not running any more; the exit code is unknown.</exception>
    /// <exception cref="TimeoutException">It runs but QMP did not answer within <see cref="QemuProcessOptions.StartTimeout"/>.</exception>
    public static async Task<QemuProcess> AttachAsync(ProcessIdentity identity, string qmpSocketPath, QemuProcessOptions options, CancellationToken ct = default)
    {
        if (!identity.IsAlive(qmpSocketPath))
            throw new QemuExitedException(new QemuExit(QemuExit.UnknownExitCode, options.LogPath is { } log ? ReadTail(log, options.StderrTailLines) : ""),
                $"QEMU (pid {identity.Pid}) is not running any more");
        var qemu = new QemuProcess(null, identity, qmpSocketPath, ownsSocketPath: false, options);
        qemu.WatchAdopted(qmpSocketPath);
        try
        {
            qemu._qmp = await qemu.ConnectQmpAsync(ct).ConfigureAwait(false);
            Log.QemuAttached(qemu._logger, identity.Pid, qmpSocketPath);
            return qemu;
        }
        catch
        {
            // Not ours to kill: it may be a healthy VM whose QMP is busy. Only stop watching it.
            await qemu.DetachAsync().ConfigureAwait(false);
            throw;
        }
    }

    private void WatchAdopted(string qmpSocketPath)
    {
        var token = _detached.Token;
        _ = Task.Run(async () =>
        {
            try
            {
                // QMP closing is the prompt sign (the kernel closes QEMU's sockets when it dies); /proc is the proof,
                // checked every second as well in case QMP is not connected.
                var never = Task.Delay(Timeout.Infinite, token);
                while (_identity.IsAlive(qmpSocketPath))
                {
                    var qmp = _qmp;
                    bool closed = qmp?.Closed.IsCompleted == true;
                    await Task.WhenAny(qmp is null || closed ? never : qmp.Closed, Task.Delay(closed ? 100 : 1000, token)).ConfigureAwait(false);
                    token.ThrowIfCancellationRequested();
                }
            }
            catch (OperationCanceledException) { return; }
            _serial.Writer.TryComplete();
            var exit = new QemuExit(QemuExit.UnknownExitCode, StderrTail);
            Log.QemuExited(_logger, Pid, exit.ExitCode);
            _exited.TrySetResult(exit);
        }, CancellationToken.None);
    }

    private void Supervise()
    {
        if (_options.LogPath is not null)
        {
            // Detached: nothing to pump; the exit code comes from our own child, unless we detach first.
            _serial.Writer.TryComplete();
            var process = _process!;
            var token = _detached.Token;
            _ = Task.Run(async () =>
            {
                try { await process.WaitForExitAsync(token).ConfigureAwait(false); }
                catch (OperationCanceledException) { return; }
                var exit = new QemuExit(process.ExitCode, StderrTail);
                Log.QemuExited(_logger, Pid, exit.ExitCode);
                _exited.TrySetResult(exit);
            }, CancellationToken.None);
            return;
        }
        var stderr = PumpLinesAsync(_process!.StandardError, line =>
        {
            lock (_stderrTail)
            {
                _stderrTail.Enqueue(line);
                while (_stderrTail.Count > _options.StderrTailLines) _stderrTail.Dequeue();
            }
        });
        var child = _process!;
        var stdout = PumpLinesAsync(child.StandardOutput, line => _serial.Writer.TryWrite(line));
        _ = Task.Run(async () =>
        {
            await child.WaitForExitAsync().ConfigureAwait(false);
            // The pipes close with the process; drain them so the tail is complete.
            await Task.WhenAll(stderr, stdout).WaitAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            _serial.Writer.TryComplete();
            var exit = new QemuExit(child.ExitCode, StderrTail);
            Log.QemuExited(_logger, child.Id, exit.ExitCode);
            _exited.TrySetResult(exit);
        });
    }

    private static async Task PumpLinesAsync(StreamReader reader, Action<string> onLine)
    {
        try
        {
            while (await reader.ReadLineAsync().ConfigureAwait(false) is { } line) onLine(line.TrimEnd('\r'));
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException)
        {
        }
    }

    private async Task<QmpClient> ConnectQmpAsync(CancellationToken ct)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(_options.StartTimeout);
        try
        {
            while (true)
            {
                if (_exited.Task.IsCompleted)
                    throw new QemuExitedException(_exited.Task.Result, "QEMU exited during start-up");
                if (File.Exists(_socketPath))
                {
                    try
                    {
                        return await QmpClient.ConnectAsync(_socketPath, _options.Qmp, deadline.Token).ConfigureAwait(false);
                    }
                    catch (SocketException)
                    {
                        // Bound but not listening yet.
                    }
                }
                // Wake on exit or after a short poll, whichever comes first.
                await Task.WhenAny(_exited.Task, Task.Delay(10, deadline.Token)).ConfigureAwait(false);
                deadline.Token.ThrowIfCancellationRequested();
            }
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new TimeoutException($"QEMU (pid {Pid}) did not answer on {_socketPath} within {_options.StartTimeout}: {StderrTail}");
        }
        catch (QmpConnectionClosedException)
        {
            if (!await WaitExitedAsync(TimeSpan.FromSeconds(1)).ConfigureAwait(false)) throw;
            throw new QemuExitedException(_exited.Task.Result, "QEMU exited during start-up");
        }
    }

    private async Task<bool> WaitExitedAsync(TimeSpan timeout)
    {
        await ((Task)_exited.Task).WaitAsync(timeout).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        return _exited.Task.IsCompleted;
    }

    /// <summary>SIGKILLs QEMU (if it still runs) and waits for it to be reaped.</summary>
    public async Task<QemuExit> KillAsync()
    {
        if (_detached.IsCancellationRequested) throw new InvalidOperationException($"QEMU (pid {Pid}) was detached");
        if (!_exited.Task.IsCompleted)
        {
            if (_process is null) _identity.Kill();
            else
            {
                try { _process.Kill(entireProcessTree: false); }
                catch (InvalidOperationException) { /* already exited */ }
            }
        }
        return await _exited.Task.ConfigureAwait(false);
    }

    /// <summary>Asks QEMU to quit over QMP; kills it if it has not exited within <paramref name="timeout"/>.</summary>
    public async Task<QemuExit> QuitAsync(TimeSpan timeout, CancellationToken ct = default)
    {
        if (_exited.Task.IsCompleted) return _exited.Task.Result;
        try
        {
            await Qmp.ExecuteAsync("quit", null, timeout, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is QmpConnectionClosedException or TimeoutException or QmpException)
        {
            // Closing before the reply is a normal quit; the others fall through to the kill below.
        }
        if (await WaitExitedAsync(timeout).ConfigureAwait(false)) return _exited.Task.Result;
        Log.QemuQuitTimedOut(_logger, Pid, timeout);
        return await KillAsync().ConfigureAwait(false);
    }

    public Task<QemuExit> QuitAsync(CancellationToken ct = default) => QuitAsync(TimeSpan.FromSeconds(10), ct);

    /// <summary>
    /// Lets go of QEMU without stopping it (our daemon is going away, the VM is not): QMP is closed, supervision stops,
    /// and <see cref="Exited"/> never completes. QEMU goes on; <see cref="AttachAsync"/> finds it again.
    /// </summary>
    public async Task DetachAsync()
    {
        if (_detached.IsCancellationRequested) return;
        await _detached.CancelAsync().ConfigureAwait(false);
        if (_qmp is not null) await _qmp.DisposeAsync().ConfigureAwait(false);
        _process?.Dispose();
    }

    public async ValueTask DisposeAsync()
    {
        if (_detached.IsCancellationRequested) return;
        await KillAsync().ConfigureAwait(false);
        if (_qmp is not null) await _qmp.DisposeAsync().ConfigureAwait(false);
        if (_ownsSocketPath) TryDelete(_socketPath);
        _process?.Dispose();
    }

    private static void TryDelete(string path)
    {
        try { File.Delete(path); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
