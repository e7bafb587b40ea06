using System.Globalization;
using Roam.Cli.Commands;
using Roam.Control;

namespace Roam.Cli.Output;

/// <summary>Migrations and hand-overs as one-line summaries.</summary>
internal static class MigrationOutput
{
    /// <summary>The end of a migrate job: --json prints its view; the exit code says how it ended, a failure's reason goes to stderr.</summary>
    public static async Task<int> ReportJobAsync(CliContext context, JobView job)
    {
        if (context.Json) context.WriteJson(job, JsonOutput.Context.JobView);
        switch (job.State)
        {
            case JobStates.Succeeded:
                if (!context.Json) context.Out.WriteLine(Summary(job));
                return ExitCodes.Success;
            case JobStates.Cancelled:
                await context.Error.WriteLineAsync($"roam: migration of {job.Volume} to {job.Peer} cancelled; {job.Volume} stays primary here").ConfigureAwait(false);
                return ExitCodes.Failed;
            default:
                await context.Error.WriteLineAsync($"roam: migration of {job.Volume} to {job.Peer} failed: {job.Error}").ConfigureAwait(false);
                return ExitCodes.Failed;
        }
    }

    /// <summary>"migrated vol to beta in 4.2 s: copied 512 MiB (600 MiB on the wire), writes paused 12 ms; beta is primary, ..."</summary>
    public static string Summary(JobView job) =>
        $"migrated {job.Volume} to {job.NewPrimary ?? job.Peer} in {Sizes.Seconds(job.ElapsedSeconds)}: copied {Sizes.Format(job.BytesDone)} " +
        $"({Sizes.Format(job.BytesOnWire ?? 0)} on the wire), writes paused {Milliseconds(job.WritePauseMs ?? 0)}; " +
        Outcome(job.NewPrimary ?? job.Peer ?? "the peer", job.KeptReplica ?? true);

    public static string Summary(HandOverView h) =>
        $"handed {h.Volume} over to {h.NewPrimary}: writes paused {Milliseconds(h.WritePauseMs)}; " + Outcome(h.NewPrimary, h.KeptReplica);

    /// <summary>"Copying to beta: 12 MiB of 64 MiB copied, 52 MiB left, 30 MiB/s, ETA 2 s"</summary>
    public static string Status(MigrationView m)
    {
        var line = $"{m.Phase} to {m.Peer}: {Sizes.Format(m.BytesDone)} of {Sizes.Format(m.BytesTotal)} copied, {Sizes.Format(m.BytesLeft)} left, " +
            $"{Sizes.Format(m.BytesOnWire)} on the wire";
        if (m.Phase is MigrationPhases.Preparing or MigrationPhases.Copying)
            line += $", {Sizes.Rate(m.BytesPerSecond)}" + (m.EtaSeconds is { } eta ? $", ETA {Sizes.Seconds(eta)}" : "");
        if (m.Error is { } error) line += $": {error}";
        return line;
    }

    public static string Milliseconds(double ms) => ms < 10
        ? string.Create(CultureInfo.InvariantCulture, $"{ms:0.##} ms")
        : string.Create(CultureInfo.InvariantCulture, $"{ms:0} ms");

    private static string Outcome(string newPrimary, bool keptReplica) =>
        $"{newPrimary} is primary, " + (keptReplica ? "this host keeps a warm replica" : "this host's copy was removed");
}
