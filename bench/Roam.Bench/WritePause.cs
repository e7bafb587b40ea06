using System.Globalization;
using Roam.Replication.Engine;
using Roam.Testing;
using Roam.Testing.Replication;

/// <summary>
/// How long a volume migration's hand-over stops the writes, measured (the tests only check that it completes and
/// what it reports): the same in-process migration as MigrationTests' first, run a number of times.
/// </summary>
internal static class WritePause
{
    private const string Vol = "disk";
    private const long MiB = 1024 * 1024;

    public static async Task<int> RunAsync(int runs)
    {
        if (runs < 1) throw new ArgumentOutOfRangeException(nameof(runs), "at least one run");
        var pauses = new List<TimeSpan>();
        for (int run = 1; run <= runs; run++)
        {
            var (pause, writes) = await OnceAsync(run).ConfigureAwait(false);
            pauses.Add(pause);
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"run {run}/{runs}: write pause {pause.TotalMilliseconds:0.0} ms ({writes} writes before the hand-over)"));
        }
        pauses.Sort();
        double Ms(TimeSpan t) => t.TotalMilliseconds;
        double min = Ms(pauses[0]), max = Ms(pauses[^1]);
        double median = pauses.Count % 2 == 1 ? Ms(pauses[pauses.Count / 2]) : (Ms(pauses[pauses.Count / 2 - 1]) + Ms(pauses[pauses.Count / 2])) / 2;
        Console.WriteLine("| volume migration write pause | runs | min | median | max |");
        Console.WriteLine("|---|---|---|---|---|");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| in-process, 32 MiB volume, looping writer | {runs} | {min:0.0} ms | {median:0.0} ms | {max:0.0} ms |"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{{\"bench\":\"write-pause\",\"runs\":{runs},\"minMs\":{min:0.0},\"medianMs\":{median:0.0},\"maxMs\":{max:0.0}}}"));
        return 0;
    }

    private static async Task<(TimeSpan Pause, int Writes)> OnceAsync(int seed)
    {
        var (alpha, beta) = await ReplNode.PairAsync().ConfigureAwait(false);
        await using (alpha.ConfigureAwait(false))
        await using (beta.ConfigureAwait(false))
        {
            alpha.Store.Create(Vol, 32 * MiB);
            using (var lease = alpha.Store.Open(Vol))
            {
                for (long at = 0; at < 16 * MiB; at += 4 * MiB)
                    await lease.Device.WriteAsync(at, TestData.RandomBytes((int)(4 * MiB), seed + (int)(at / MiB)), false, default).ConfigureAwait(false);
                await lease.Device.FlushAsync(default).ConfigureAwait(false);
            }
            await alpha.Service.PrepareMigrationAsync(Vol, "beta").ConfigureAwait(false);
            var writer = LoopWriter.Start(alpha.Open(Vol, out _), 0, 256, seed);
            await alpha.Service.WaitInSyncAsync(Vol).ConfigureAwait(false);
            await Task.Delay(200).ConfigureAwait(false);   // in sync, with the writer going
            int before = writer.Count;
            var result = await alpha.Service.HandOverAsync(Vol, keepReplica: true).ConfigureAwait(false);
            await writer.Task.WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
            if (writer.Refused is null) throw new InvalidOperationException("the writer was never refused: the hand-over did not stop the writes");
            if (result.NewPrimary != "beta") throw new InvalidOperationException($"the new primary is {result.NewPrimary}");
            return (result.WritePause, before);
        }
    }
}
