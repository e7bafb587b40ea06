using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Roam.EndToEnd.Tests.Infrastructure;

/// <summary>
/// A TCP forwarder between two roamds on loopback: listens on 127.0.0.1:<see cref="Port"/> and forwards every
/// connection to 127.0.0.1:<see cref="TargetPort"/>. <see cref="Cut"/> closes every forwarded connection and refuses
/// new ones until <see cref="Restore"/>; <see cref="BytesPerSecond"/> throttles the forward direction (0: no limit).
/// <see cref="BytesForwarded"/> counts what went to the target (the replication data), independent of roamd's counters.
/// </summary>
public sealed class LinkCutter : IAsyncDisposable
{
    private const int ChunkSize = 16 * 1024;
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<int, (TcpClient Client, TcpClient Server)> _pairs = new();
    private readonly Task _acceptLoop;
    private readonly object _throttleGate = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private long _bytesForwarded;
    private long _bytesPerSecond;
    private long _throttleStartBytes;
    private TimeSpan _throttleStart;
    private volatile bool _cut;
    private int _nextId;

    public LinkCutter(int targetPort)
    {
        TargetPort = targetPort;
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _acceptLoop = Task.Run(AcceptLoopAsync);
    }

    public int Port { get; }

    /// <summary>The real peer port; may change (a roamd restarted on another port).</summary>
    public int TargetPort { get; set; }

    public string Address => $"127.0.0.1:{Port}";

    public bool IsCut => _cut;

    public long BytesForwarded => Interlocked.Read(ref _bytesForwarded);

    public int OpenConnections => _pairs.Count;

    /// <summary>Throttle of the forward direction (all connections together); 0: as fast as it goes.</summary>
    public long BytesPerSecond
    {
        get => Interlocked.Read(ref _bytesPerSecond);
        set
        {
            lock (_throttleGate)
            {
                _throttleStart = _clock.Elapsed;
                _throttleStartBytes = BytesForwarded;
                Interlocked.Exchange(ref _bytesPerSecond, value);
            }
        }
    }

    /// <summary>Closes every forwarded connection and refuses new ones until <see cref="Restore"/>.</summary>
    public void Cut()
    {
        _cut = true;
        foreach (var id in _pairs.Keys) Close(id);
    }

    public void Restore() => _cut = false;

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try { client = await _listener.AcceptTcpClientAsync(_stop.Token); }
            catch (Exception) when (_stop.IsCancellationRequested) { return; }
            catch (SocketException) { continue; }
            if (_cut)
            {
                client.Client.LingerState = new LingerOption(true, 0); // a reset, like a link that is down
                client.Dispose();
                continue;
            }
            _ = Task.Run(() => ForwardAsync(client));
        }
    }

    private async Task ForwardAsync(TcpClient client)
    {
        var server = new TcpClient { NoDelay = true };
        client.NoDelay = true;
        try { await server.ConnectAsync(IPAddress.Loopback, TargetPort, _stop.Token); }
        catch (Exception)
        {
            client.Dispose();
            server.Dispose();
            return;
        }
        int id = Interlocked.Increment(ref _nextId);
        _pairs[id] = (client, server);
        if (_cut) { Close(id); return; }
        var up = PumpAsync(client.GetStream(), server.GetStream(), forward: true);
        var down = PumpAsync(server.GetStream(), client.GetStream(), forward: false);
        await Task.WhenAny(up, down);
        Close(id);
        await Task.WhenAll(up, down);
    }

    private async Task PumpAsync(NetworkStream from, NetworkStream to, bool forward)
    {
        var buffer = new byte[ChunkSize];
        try
        {
            while (true)
            {
                int n = await from.ReadAsync(buffer, _stop.Token);
                if (n == 0) return;
                if (forward) await ThrottleAsync(n);
                if (_cut) return;
                await to.WriteAsync(buffer.AsMemory(0, n), _stop.Token);
                if (forward) Interlocked.Add(ref _bytesForwarded, n);
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException or OperationCanceledException) { }
    }

    private async Task ThrottleAsync(int bytes)
    {
        TimeSpan due;
        lock (_throttleGate)
        {
            long rate = BytesPerSecond;
            if (rate <= 0) return;
            double seconds = (BytesForwarded + bytes - _throttleStartBytes) / (double)rate;
            due = _throttleStart + TimeSpan.FromSeconds(seconds) - _clock.Elapsed;
        }
        if (due > TimeSpan.FromMilliseconds(1)) await Task.Delay(due, _stop.Token);
    }

    private void Close(int id)
    {
        if (!_pairs.TryRemove(id, out var pair)) return;
        foreach (var c in new[] { pair.Client, pair.Server })
        {
            try { c.Client.LingerState = new LingerOption(true, 0); } catch (Exception ex) when (ex is SocketException or ObjectDisposedException) { }
            c.Dispose();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        foreach (var id in _pairs.Keys) Close(id);
        try { await _acceptLoop; } catch (OperationCanceledException) { }
        _stop.Dispose();
    }
}
