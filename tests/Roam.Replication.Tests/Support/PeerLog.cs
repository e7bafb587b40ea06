using Roam.Peers.Transport;

namespace Roam.Replication.Tests.Support;

/// <summary>What the peer listener logged, from the shared <see cref="TestLog"/>.</summary>
public static class PeerLog
{
    extension(TestLog log)
    {
        /// <summary>The <see cref="PeerRefusal"/> of every connection the listener dropped, in order.</summary>
        public IReadOnlyList<PeerRefusal> Refusals => log.ValuesOf<PeerRefusal>("Refusal");

        public Task<LogEntry> WaitForRefusalAsync(PeerRefusal refusal, TimeSpan? timeout = null) =>
            log.WaitForAsync(e => e.Values.GetValueOrDefault("Refusal") is PeerRefusal r && r == refusal, $"a {refusal} refusal", timeout);
    }
}
