namespace Roam.Daemon.Migration;

/// <summary>Fault injection for the end-to-end tests, off unless roamd's environment asks for it.</summary>
internal static class VmMigrationTestHooks
{
    private static int _corruptionsInjected;

    /// <summary>
    /// Fault injection for the end-to-end tests, off unless roamd's environment sets ROAM_TEST_CORRUPT_TUNNEL:
    /// "after-bytes:N" (the chunk of the outgoing memory stream that reaches past byte N) or "after-handover" (the first
    /// chunk sent once the disk was handed over) has one payload bit flipped after its checksum was computed. Only one
    /// migration per roamd process is corrupted, so a test's later migration runs clean.
    /// </summary>
    public static Func<long, bool>? CorruptionForTests(Func<bool> handedOver)
    {
        var spec = Environment.GetEnvironmentVariable("ROAM_TEST_CORRUPT_TUNNEL");
        if (string.IsNullOrEmpty(spec)) return null;
        Func<long, bool> when;
        if (spec == "after-handover") when = _ => handedOver();
        else if (spec.StartsWith("after-bytes:", StringComparison.Ordinal)
                 && long.TryParse(spec["after-bytes:".Length..], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long n))
            when = offset => offset > n;
        else return null;
        return offset => when(offset) && Interlocked.CompareExchange(ref _corruptionsInjected, 1, 0) == 0;
    }

    /// <summary>
    /// Fault injection for the end-to-end tests, off unless roamd's environment sets ROAM_TEST_HOLD_AT=STEP:PATH: at STEP
    /// ("after-handover": the disk handed over, QEMU not yet told to finish) this roamd creates PATH and waits until it
    /// is deleted, so a test can cut a link at exactly that point.
    /// </summary>
    public static bool HoldRequested(string step) =>
        Environment.GetEnvironmentVariable("ROAM_TEST_HOLD_AT") is { } hold && hold.StartsWith(step + ":", StringComparison.Ordinal);

    public static async Task HoldForTestsAsync(string step)
    {
        if (!HoldRequested(step)) return;
        var hold = Environment.GetEnvironmentVariable("ROAM_TEST_HOLD_AT")!;
        var path = hold[(step.Length + 1)..];
        await File.WriteAllTextAsync(path, step).ConfigureAwait(false);
        while (File.Exists(path)) await Task.Delay(20).ConfigureAwait(false);
    }
}
