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
/// </summary>
public sealed class QemuProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly QemuProcessOptions _options;
    private readonly ILogger _logger;
    private readonly string _socketPath;
    private readonly bool _ownsSocketPath;
    private readonly Queue<string> _stderrTail = new();
    private readonly Channel<string> _serial;
    private readonly TaskCompletionSource<QemuExit> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private QmpClient? _qmp;

    private QemuProcess(Process process, string socketPath, bool ownsSocketPath, QemuProcessOptions options)
    {
        _process = process;
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

    public int Pid => _process.Id;

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
        get { lock (_stderrTail) return string.Join('\n', _stderrTail); }
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

        var startInfo = new ProcessStartInfo(commandLine.Binary)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in commandLine.Build()) startInfo.ArgumentList.Add(arg);

        var process = new Process { StartInfo = startInfo };
        if (!process.Start()) throw new InvalidOperationException($"Could not start {commandLine.Binary}");
        var qemu = new QemuProcess(process, socketPath, ownsSocket, options);
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

    private void Supervise()
    {
        var stderr = PumpLinesAsync(_process.StandardError, line =>
        {
            lock (_stderrTail)
            {
                _stderrTail.Enqueue(line);
                while (_stderrTail.Count > _options.StderrTailLines) _stderrTail.Dequeue();
            }
        });
        var stdout = PumpLinesAsync(_process.StandardOutput, line => _serial.Writer.TryWrite(line));
        _ = Task.Run(async () =>
        {
            await _process.WaitForExitAsync().ConfigureAwait(false);
            // The pipes close with the process; drain them so the tail is complete.
            await Task.WhenAll(stderr, stdout).WaitAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            _serial.Writer.TryComplete();
            var exit = new QemuExit(_process.ExitCode, StderrTail);
            Log.QemuExited(_logger, _process.Id, exit.ExitCode);
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
        if (!_exited.Task.IsCompleted)
        {
            try { _process.Kill(entireProcessTree: false); }
            catch (InvalidOperationException) { /* already exited */ }
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

    public async ValueTask DisposeAsync()
    {
        await KillAsync().ConfigureAwait(false);
        if (_qmp is not null) await _qmp.DisposeAsync().ConfigureAwait(false);
        if (_ownsSocketPath) TryDelete(_socketPath);
        _process.Dispose();
    }

    private static void TryDelete(string path)
    {
        try { File.Delete(path); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
