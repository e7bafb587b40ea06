using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace Roam.Daemon.Vms;

/// <summary>
/// A VM's serial console, read by roamd: QEMU's ttyS0 is a chardev socket client (reconnecting) of a unix socket this
/// recorder listens on. QEMU itself logs every byte to <c>vms/NAME.serial</c> (the chardev's logfile), so that file is
/// whole even while roamd is down (restarting: the VM goes on); this recorder writes
/// <c>vms/NAME.serial.stamped</c>, started afresh with each QEMU run: one line per console line, prefixed with the host time (UTC, microseconds, ISO 8601)
/// at which roamd received its first byte: <c>2025-01-31T12:34:56.123456Z HB 42 ...</c>. Host time goes on while the
/// guest is paused (its own clock does not, under TCG), so the stamps show a pause as the guest lived it.
/// The socket is read on a thread of its own with blocking reads, never waiting for the thread pool: QEMU's 16550
/// sends each console byte as a write of its own, so its socket (default send buffer, ~212 KB of skb overhead) takes only
/// ~280 bytes, some 50 ms of heartbeats, before a write fails with EAGAIN; QEMU then logs that byte to NAME.serial and
/// logs it again when the retry goes through: a reader late by 50 ms shows as a byte twice in NAME.serial
/// (docs-notes/console-duplicate-bytes.md).
/// </summary>
internal sealed class ConsoleRecorder : IAsyncDisposable
{
    public const string StampFormat = "yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'";
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(2);

    private readonly Socket _listener;
    private readonly string _socketPath;
    private readonly FileStream _stamped;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private readonly List<byte> _line = [];
    private readonly Lock _gate = new();
    private DateTime? _lineStart;
    private volatile bool _connected;
    private Socket? _connection; // Interlocked/Volatile

    public ConsoleRecorder(string socketPath, string stampedPath, bool append = false)
    {
        _socketPath = socketPath;
        try { File.Delete(socketPath); } catch (IOException) { }
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            _listener.Bind(new UnixDomainSocketEndPoint(socketPath));
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(socketPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            _listener.Listen(1);
            _stamped = new FileStream(stampedPath, append ? FileMode.Append : FileMode.Create, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete);
        }
        catch
        {
            _listener.Dispose();
            throw;
        }
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var reader = new Thread(() =>
        {
            try { Run(); }
            catch (Exception ex) when (ex is not OutOfMemoryException) { } // a thread's exception would end roamd; the console record just stops
            finally { done.TrySetResult(); }
        })
        { IsBackground = true, Name = "console " + Path.GetFileName(socketPath) };
        reader.Start();
        _loop = done.Task;
    }

    /// <summary>The console socket of VM <paramref name="name"/> (see <see cref="VmSocketPaths"/>).</summary>
    public static string SocketPathFor(string vmsDirectory, string name) => VmSocketPaths.For(vmsDirectory, name + ".console.sock");

    /// <summary>Parses a line of a stamped console log: its host time and the console line, or false.</summary>
    public static bool TryParse(string stampedLine, out DateTimeOffset stamp, out string line)
    {
        int space = stampedLine.IndexOf(' ', StringComparison.Ordinal);
        line = space < 0 ? "" : stampedLine[(space + 1)..];
        return DateTimeOffset.TryParseExact(space < 0 ? stampedLine : stampedLine[..space], StampFormat, CultureInfo.InvariantCulture,
            DateTimeStyles.AssumeUniversal, out stamp) && space >= 0;
    }

    private void Run()
    {
        var buffer = new byte[65536];
        while (!_stop.IsCancellationRequested)
        {
            Socket connection;
            try { connection = _listener.Accept(); }
            catch (ObjectDisposedException) { return; }
            catch (SocketException) when (!_stop.IsCancellationRequested) { continue; }
            catch (SocketException) { return; }
            // Published with a full fence, so that either DisposeAsync sees it (and shuts it down) or this sees _stop.
            Interlocked.Exchange(ref _connection, connection);
            _connected = true;
            using (connection)
            {
                if (_stop.IsCancellationRequested) break; // disposed just before the connection was published
                while (true)
                {
                    int n;
                    try { n = connection.Receive(buffer, SocketFlags.None); }
                    catch (Exception ex) when (ex is SocketException or ObjectDisposedException) { break; }
                    if (n == 0) break;
                    Record(buffer.AsSpan(0, n), DateTime.UtcNow);
                }
            }
            Volatile.Write(ref _connection, null);
            _connected = false;
        }
    }

    private void Record(ReadOnlySpan<byte> data, DateTime now)
    {
        lock (_gate)
        {
            try
            {
                foreach (byte b in data)
                {
                    _lineStart ??= now;
                    if (b == (byte)'\n')
                    {
                        _stamped.Write(Encoding.ASCII.GetBytes(_lineStart.Value.ToString(StampFormat, CultureInfo.InvariantCulture) + " "));
                        _stamped.Write(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_line));
                        _stamped.WriteByte((byte)'\n');
                        _line.Clear();
                        _lineStart = null;
                    }
                    else if (b != (byte)'\r') _line.Add(b);
                }
                _stamped.Flush();
            }
            catch (Exception ex) when (ex is IOException or ObjectDisposedException) { } // a full disk must not take the VM's supervision down
        }
    }

    /// <summary>Once QEMU is gone: takes what it wrote last (up to its end of stream, briefly), then closes the files.</summary>
    public async ValueTask DisposeAsync()
    {
        var drained = Stopwatch();
        while (_connected && drained.Elapsed < DrainTimeout) await Task.Delay(10).ConfigureAwait(false);
        await _stop.CancelAsync().ConfigureAwait(false);
        _listener.Dispose(); // ends a blocking Accept
        try { Volatile.Read(ref _connection)?.Shutdown(SocketShutdown.Both); } // ends a blocking Receive
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException) { }
        await _loop.WaitAsync(DrainTimeout).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing); // (a late Record finds the file closed)
        lock (_gate)
        {
            try
            {
                // A line QEMU stopped in the middle of (a migration pauses the guest mid-line; the destination prints
                // the rest): kept, stamped when its first byte came, so the last heartbeat here is not lost.
                if (_line.Count > 0 && _lineStart is { } started)
                {
                    _stamped.Write(Encoding.ASCII.GetBytes(started.ToString(StampFormat, CultureInfo.InvariantCulture) + " "));
                    _stamped.Write(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_line));
                    _stamped.WriteByte((byte)'\n');
                }
            }
            catch (IOException) { }
            _stamped.Dispose();
        }
        try { File.Delete(_socketPath); } catch (IOException) { }
        _stop.Dispose();
    }

    private static System.Diagnostics.Stopwatch Stopwatch() => System.Diagnostics.Stopwatch.StartNew();
}
