using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;

namespace Roam.EndToEnd.Tests.Infrastructure;

/// <summary>
/// The real roamd executable (roamd.dll from this test's output directory, run by `dotnet`), on a
/// data dir of the test's choosing; ready once its control socket accepts connections.
/// </summary>
public sealed class RoamdProcess : IAsyncDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);
    private readonly StringBuilder _output = new();

    private RoamdProcess(Process process, string dataDir)
    {
        Process = process;
        DataDir = dataDir;
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public static string RoamdDll => Path.Combine(AppContext.BaseDirectory, "roamd.dll");

    public Process Process { get; }

    public string DataDir { get; }

    public string ControlSocket => Path.Combine(DataDir, "control.sock");

    public string NbdSocket => Path.Combine(DataDir, "nbd.sock");

    public string NbdUri(string volume) => $"nbd+unix:///{volume}?socket={NbdSocket}";

    /// <summary>Everything roamd printed so far (its log and stderr).</summary>
    public string Output
    {
        get { lock (_output) return _output.ToString(); }
    }

    /// <summary>Starts roamd and waits until its control API answers.</summary>
    public static Task<RoamdProcess> StartAsync(string dataDir, params string[] extraArguments) =>
        StartAsync(dataDir, extraArguments, environment: null);

    /// <summary>Starts roamd with extra environment variables (e.g. a PATH with stand-in tools).</summary>
    public static async Task<RoamdProcess> StartAsync(string dataDir, string[] extraArguments, IReadOnlyDictionary<string, string>? environment,
        string? networkNamespace = null)
    {
        DataDirQemus.AdoptOrphans();
        var roamd = new RoamdProcess(Spawn(["--data-dir", dataDir, .. extraArguments], environment, networkNamespace), dataDir);
        var clock = Stopwatch.StartNew();
        while (true)
        {
            if (roamd.Process.HasExited)
            {
                await roamd.Process.WaitForExitAsync();
                throw new InvalidOperationException($"roamd exited with {roamd.Process.ExitCode} while starting:\n{roamd.Output}");
            }
            if (File.Exists(roamd.ControlSocket) && await CanConnectAsync(roamd.ControlSocket)) return roamd;
            if (clock.Elapsed > StartTimeout)
            {
                await roamd.DisposeAsync();
                throw new TimeoutException($"roamd did not open {roamd.ControlSocket} within {StartTimeout.TotalSeconds} s:\n{roamd.Output}");
            }
            await Task.Delay(25);
        }
    }

    /// <summary>Starts roamd with the given arguments without waiting for it (for runs expected to fail).</summary>
    public static Process Spawn(IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null, string? networkNamespace = null)
    {
        // In a namespace through `ip netns exec NS dotnet ...`, which execs: the process is roamd itself.
        var start = new ProcessStartInfo(networkNamespace is null ? "dotnet" : "ip")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        if (networkNamespace is not null) foreach (var a in (string[])["netns", "exec", networkNamespace, "dotnet"]) start.ArgumentList.Add(a);
        start.ArgumentList.Add(RoamdDll);
        foreach (var a in arguments) start.ArgumentList.Add(a);
        // VMs get no NIC unless a test asks: the default VM network (a bridge, dnsmasq, NAT) belongs in a namespace a network test made.
        if (!start.ArgumentList.Contains("--vm-network")) { start.ArgumentList.Add("--vm-network"); start.ArgumentList.Add("none"); }
        start.Environment.Remove("ASPNETCORE_URLS");
        foreach (var (name, value) in environment ?? new Dictionary<string, string>()) start.Environment[name] = value;
        return Process.Start(start)!;
    }

    /// <summary>Sends SIGTERM and waits for the exit; returns the exit code.</summary>
    public async Task<int> StopAsync(TimeSpan timeout)
    {
        if (!Process.HasExited) Signal(Process.Id, SigTerm);
        using var cts = new CancellationTokenSource(timeout);
        try { await Process.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"roamd did not stop within {timeout.TotalSeconds} s of SIGTERM:\n{Output}");
        }
        return Process.ExitCode;
    }

    /// <summary>
    /// Stops roamd (SIGTERM; SIGKILL after 15 s) and then kills the QEMUs of its data dir, which outlive roamd by
    /// design. To end roamd alone (a restart test), use <see cref="StopAsync"/> or <see cref="Signal"/> instead.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (!Process.HasExited)
        {
            Signal(Process.Id, SigTerm);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(15));
            try { await Process.WaitForExitAsync(cts.Token); }
            catch (OperationCanceledException) { Process.Kill(entireProcessTree: true); await Process.WaitForExitAsync(); }
        }
        Process.Dispose();
        await DataDirQemus.KillAllAsync(DataDir);
    }

    public static async Task<bool> CanConnectAsync(string socketPath)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath));
            return true;
        }
        catch (SocketException) { return false; }
    }

    private void Append(string? line)
    {
        if (line is null) return;
        lock (_output) _output.AppendLine(line);
    }

    public const int SigTerm = 15;
    public const int SigKill = 9;

    public static void Signal(int pid, int signal)
    {
        if (kill(pid, signal) != 0) throw new InvalidOperationException($"kill({pid}, {signal}) failed: errno {Marshal.GetLastPInvokeError()}");
    }

#pragma warning disable SYSLIB1054 // LibraryImport needs unsafe code, which this project does not allow
    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int signal);
#pragma warning restore SYSLIB1054
}
