using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

// roam-bench tls-ceiling BYTES [CHUNK]
//   Pushes BYTES of random data one way over a loopback TCP connection wrapped in TLS 1.3 with mutual
//   authentication and ECDSA P-256 self-signed certificates, as roamd's peer links are (the same
//   SslStream, the same OpenSSL, so the same negotiated cipher). The sender writes CHUNK bytes per
//   WriteAsync (default 1 MiB); the receiver reads and discards, then answers one byte, and the
//   clock stops when the sender gets it. Prints one JSON line: bytes, seconds, bytesPerSecond, cipher.
//
// roam-bench write-pause [RUNS]
//   The volume migration's write pause, in process (no roamd, no NBD): RUNS times (default 10), two replicating
//   hosts on 127.0.0.1 with real TLS, a 32 MiB volume with 16 MiB of data migrated alpha -> beta while a writer
//   loops over its first 16 MiB, as Roam.Replication.Tests' MigrationTests do; the hand-over's WritePause (from
//   stopping writes to beta confirming) of each run on stderr, then min/median/max as a table and one JSON line.
//
// roam-bench layer-allocations [BenchmarkDotNet options]
//   BenchmarkDotNet with [MemoryDiagnoser]: NBD READ and WRITE of 4 KiB through roamd's whole export stack over
//   in-memory pipes (plain primary, and replicated with one async replica), with the bytes allocated per request.
//
// roam-bench alloc-sources plain|replicated read|write
//   Where those bytes come from: the runtime's allocation samples by type over 200 000 requests.
//
// roam-bench throughput-chart SINK.csv EVENTS.tsv OUT.png|OUT.svg [TITLE]
//   The seed's Figure 4a from scripts/net-sink.py's CSV, with the migration's phases marked (see ThroughputChart).
return args switch
{
    ["throughput-chart", var csv, var events, var chart, ..] =>
        Roam.Bench.ThroughputChart.Run(csv, events, chart, args.Length > 4 ? args[4] : "A TCP/MPTCP stream from the VM through a live migration"),
    ["alloc-sources", var stack, var operation] => await Roam.Bench.AllocSources.RunAsync(stack, operation).ConfigureAwait(false),
    ["layer-allocations", ..] => Roam.Bench.LayerAllocations.Run(args[1..]),
    ["tls-ceiling", var bytes, ..] => await TlsCeiling.RunAsync(Size.Parse(bytes), args.Length > 2 ? (int)Size.Parse(args[2]) : 1 << 20).ConfigureAwait(false),
    ["write-pause"] => await WritePause.RunAsync(10).ConfigureAwait(false),
    ["write-pause", var runs] => await WritePause.RunAsync(int.Parse(runs, CultureInfo.InvariantCulture)).ConfigureAwait(false),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("usage: roam-bench tls-ceiling BYTES [CHUNK]   (sizes like 512M, 1G, 1048576)");
    Console.Error.WriteLine("       roam-bench write-pause [RUNS]           (default 10)");
    Console.Error.WriteLine("       roam-bench layer-allocations            (BenchmarkDotNet, [MemoryDiagnoser])");
    Console.Error.WriteLine("       roam-bench alloc-sources plain|replicated read|write");
    Console.Error.WriteLine("       roam-bench throughput-chart SINK.csv EVENTS.tsv OUT.png|OUT.svg [TITLE]");
    return 2;
}

internal static class Size
{
    public static long Parse(string text)
    {
        text = text.Trim();
        long unit = 1;
        char last = char.ToUpperInvariant(text[^1]);
        int power = "KMGT".IndexOf(last);
        if (power >= 0)
        {
            unit = 1L << (10 * (power + 1));
            text = text[..^1];
        }
        return long.Parse(text, CultureInfo.InvariantCulture) * unit;
    }
}

internal static class TlsCeiling
{
    private static readonly SslApplicationProtocol Alpn = new("roam-bench");

    public static async Task<int> RunAsync(long total, int chunk)
    {
        using var serverCert = CreateCertificate("bench-server");
        using var clientCert = CreateCertificate("bench-client");
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var endpoint = (IPEndPoint)listener.LocalEndPoint!;

        var receiver = Task.Run(async () =>
        {
            using var socket = await listener.AcceptAsync().ConfigureAwait(false);
            socket.NoDelay = true;
            await using var ssl = new SslStream(new NetworkStream(socket, ownsSocket: false), leaveInnerStreamOpen: false);
            await ssl.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
            {
                ServerCertificateContext = SslStreamCertificateContext.Create(serverCert, null),
                ClientCertificateRequired = true,
                EnabledSslProtocols = SslProtocols.Tls13,
                ApplicationProtocols = [Alpn],
                CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
                AllowRenegotiation = false,
                RemoteCertificateValidationCallback = (_, c, _, _) => c is not null,
            }).ConfigureAwait(false);
            var buffer = new byte[1 << 20];
            long received = 0;
            while (received < total)
            {
                int n = await ssl.ReadAsync(buffer).ConfigureAwait(false);
                if (n == 0) throw new IOException($"connection closed after {received} of {total} bytes");
                received += n;
            }
            await ssl.WriteAsync(new byte[] { 1 }).ConfigureAwait(false);
            await ssl.FlushAsync().ConfigureAwait(false);
        });

        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await client.ConnectAsync(endpoint).ConfigureAwait(false);
        await using var stream = new SslStream(new NetworkStream(client, ownsSocket: false), leaveInnerStreamOpen: false);
        await stream.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "bench-server",
            ClientCertificateContext = SslStreamCertificateContext.Create(clientCert, null),
            EnabledSslProtocols = SslProtocols.Tls13,
            ApplicationProtocols = [Alpn],
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
            AllowTlsResume = false,
            AllowRenegotiation = false,
            RemoteCertificateValidationCallback = (_, c, _, _) => c is not null,
        }).ConfigureAwait(false);

        // Incompressible data, as fio's --refill_buffers writes (TLS does not compress anyway).
        var data = new byte[Math.Max(chunk, 1 << 20) * 4];
        RandomNumberGenerator.Fill(data);
        var clock = Stopwatch.StartNew();
        long sent = 0;
        int offset = 0;
        while (sent < total)
        {
            int n = (int)Math.Min(chunk, total - sent);
            if (offset + n > data.Length) offset = 0;
            await stream.WriteAsync(data.AsMemory(offset, n)).ConfigureAwait(false);
            offset += n;
            sent += n;
        }
        await stream.FlushAsync().ConfigureAwait(false);
        var ack = new byte[1];
        if (await stream.ReadAsync(ack).ConfigureAwait(false) != 1) throw new IOException("no acknowledgement from the receiver");
        double seconds = clock.Elapsed.TotalSeconds;
        await receiver.ConfigureAwait(false);

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{{\"bytes\":{total},\"seconds\":{seconds:0.######},\"bytesPerSecond\":{total / seconds:0},\"protocol\":\"{stream.SslProtocol}\",\"cipher\":\"{stream.NegotiatedCipherSuite}\"}}"));
        return 0;
    }

    private static X509Certificate2 CreateCertificate(string name)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        var now = DateTimeOffset.UtcNow.AddMinutes(-5);
        using var certificate = request.CreateSelfSigned(now, now.AddDays(1));
        // Round-trip through PKCS#12 so OpenSSL gets a certificate with a usable private key.
        return X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), null);
    }
}
