using System.Reflection;
using Microsoft.Extensions.Logging;

namespace Roam.Daemon.Tests;

/// <summary>Each of roamd's log events has its own EventId, in roamd's range (5xxx), so a log search finds exactly one event.</summary>
public sealed class LogEventIdTests
{
    [Fact]
    public void Every_daemon_log_event_has_its_own_id_in_the_5xxx_range()
    {
        var events = typeof(Roam.Daemon.Vms.VmService).Assembly.GetTypes()
            .SelectMany(t => t.GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
            .Select(m => (Method: m, Attribute: m.GetCustomAttribute<LoggerMessageAttribute>()))
            .Where(e => e.Attribute is not null)
            .Select(e => (Name: $"{e.Method.DeclaringType!.Name}.{e.Method.Name}", e.Attribute!.EventId))
            .ToList();
        Assert.True(events.Count > 20, $"only {events.Count} log events found: is the attribute still LoggerMessage?");
        foreach (var (name, id) in events) Assert.True(id is >= 5000 and <= 5999, $"{name} has EventId {id}, outside roamd's 5xxx");
        var shared = events.GroupBy(e => e.EventId).Where(g => g.Count() > 1).Select(g => $"{g.Key}: {string.Join(", ", g.Select(e => e.Name))}").ToList();
        Assert.True(shared.Count == 0, "EventIds used twice: " + string.Join("; ", shared));
    }
}
