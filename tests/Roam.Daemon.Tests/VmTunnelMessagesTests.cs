using System.Text.Json;
using Roam.Daemon.Migration;
using Roam.Daemon.Vms;

namespace Roam.Daemon.Tests;

/// <summary>The VM tunnel's messages: typed op and status survive the wire; anything this build does not know is refused.</summary>
public sealed class VmTunnelMessagesTests
{
    private static readonly VmDefinition Desk = new("desk", "vm1", 256, 1, "/boot/vmlinuz", null, "console=ttyS0", DateTimeOffset.UnixEpoch);

    [Fact]
    public void Every_status_survives_a_round_trip()
    {
        foreach (var status in Enum.GetValues<VmTunnelStatus>())
        {
            var reply = new VmTunnelReply(status, status == VmTunnelStatus.Failed ? "QEMU exited" : null, "lz4", ["ab"], "xxh3");
            var back = VmTunnelJson.ParseReply(VmTunnelJson.Serialize(reply));
            Assert.Equal(status, back.Status);
            Assert.Equal(reply.Error, back.Error);
            Assert.Equal(status == VmTunnelStatus.Ok, back.Ok);
            Assert.Equal(["ab"], back.NeedBootFiles!);
        }
    }

    [Fact]
    public void Every_op_survives_a_round_trip()
    {
        foreach (var op in Enum.GetValues<VmTunnelOp>())
        {
            var request = new VmTunnelRequest(op, Desk, 1 << 30, "tcg", BootFiles: [new BootFileOffer("/boot/vmlinuz", 10, "00")]);
            var back = VmTunnelJson.TryParseRequest(VmTunnelJson.Serialize(request));
            Assert.NotNull(back);
            Assert.Equal(op, back.Op);
            Assert.Equal(Desk, back.Vm);
        }
    }

    [Fact]
    public void The_status_crosses_by_name_not_as_a_prefix_of_the_error()
    {
        var json = VmTunnelJson.Serialize(new VmTunnelReply(VmTunnelStatus.Failed, "memory stream corrupt"));
        using var doc = JsonDocument.Parse(json);
        Assert.Equal("Failed", doc.RootElement.GetProperty("status").GetString());
        Assert.Equal("memory stream corrupt", doc.RootElement.GetProperty("error").GetString());
    }

    [Theory]
    [InlineData("""{"status":"Exploded","error":null}""")]
    [InlineData("""{"status":7,"error":null}""")]
    [InlineData("""{"status":1,"error":null}""")]
    [InlineData("""{"ok":false,"error":"failed: old shape"}""")]
    [InlineData("""{"error":"no status at all"}""")]
    [InlineData("null")]
    public void A_reply_with_a_status_this_build_does_not_know_is_refused(string json) =>
        Assert.ThrowsAny<JsonException>(() => VmTunnelJson.ParseReply(json));

    [Theory]
    [InlineData("""{"op":"vm-prepare","vm":{"name":"desk","volume":"vm1"},"volumeSize":1}""")]
    [InlineData("""{"op":0,"vm":{"name":"desk","volume":"vm1"},"volumeSize":1}""")]
    [InlineData("""{"op":"Prepare","volumeSize":1}""")]
    [InlineData("""{"vm":{"name":"desk","volume":"vm1"},"volumeSize":1}""")]
    [InlineData("not json")]
    public void A_request_this_build_does_not_know_is_not_taken(string json) =>
        Assert.Null(VmTunnelJson.TryParseRequest(json));
}
