using Roam.Nbd.Protocol;
using Roam.Testing.Nbd;

namespace Roam.Nbd.Tests.Server;

/// <summary>Transmission-phase requests, the errors the spec asks for, and which errors end the connection.</summary>
public sealed class TransmissionTests : ServerTestBase
{
    public static TheoryData<bool> ReplyKinds => [true, false];

    [Theory, MemberData(nameof(ReplyKinds))]
    public async Task Write_then_read_returns_the_data(bool structured)
    {
        await using var client = await Server.ConnectAndGoAsync(Export, structured, baseAllocation: false);
        var data = Pattern(12345, 3);

        Assert.Equal(NbdError.None, (await client.WriteAsync(1000, data, NbdCommandFlags.Fua)).Error);
        var read = await client.ReadAsync(1000, (uint)data.Length);

        Assert.Equal(data, read.Data);
        Assert.Equal(NbdError.None, (await client.FlushAsync()).Error);
    }

    [Theory, MemberData(nameof(ReplyKinds))]
    public async Task Write_past_end_replies_ENOSPC_and_session_continues(bool structured)
    {
        await using var client = await Server.ConnectAndGoAsync(Export, structured, baseAllocation: false);

        var reply = await client.WriteAsync(Size - 100, new byte[200]);

        Assert.Equal(NbdError.ENOSPC, reply.Error);
        await AssertServedAsync(client);
    }

    [Theory, MemberData(nameof(ReplyKinds))]
    public async Task Read_past_end_replies_EINVAL_with_no_data_and_session_continues(bool structured)
    {
        await using var client = await Server.ConnectAndGoAsync(Export, structured, baseAllocation: false);

        var reply = await client.ReadAsync(Size - 100, 200);

        Assert.Equal(NbdError.EINVAL, reply.Error);
        Assert.Empty(reply.Data);
        await AssertServedAsync(client);
    }

    [Fact]
    public async Task Ranges_past_end_get_the_errors_the_spec_names_per_command()
    {
        // ENOSPC for writes (WRITE, WRITE_ZEROES), EINVAL for the rest.
        await using var client = await Server.ConnectAndGoAsync(Export);

        Assert.Equal(NbdError.ENOSPC, (await client.WriteZeroesAsync(Size, 1)).Error);
        Assert.Equal(NbdError.EINVAL, (await client.TrimAsync(Size - 1, 2)).Error);
        Assert.Equal(NbdError.EINVAL, (await client.RequestAsync(NbdCommand.Cache, Size, 4096)).Error);
        Assert.Equal(NbdError.EINVAL, (await client.BlockStatusAsync(Size, 1)).Error);
        await AssertServedAsync(client);
    }

    [Fact]
    public async Task Offset_plus_length_overflowing_64_bits_is_out_of_range_not_wrapped()
    {
        await using var client = await Server.ConnectAndGoAsync(Export);

        var read = await client.ReadAsync(ulong.MaxValue - 10, 100);
        var write = await client.WriteAsync(ulong.MaxValue - 10, new byte[100]);

        Assert.Equal((NbdError.EINVAL, NbdError.ENOSPC), (read.Error, write.Error));
        await AssertServedAsync(client);
    }

    [Fact]
    public async Task Read_over_32_MiB_replies_EINVAL_and_session_continues()
    {
        Server.CreateVolume("big", 64L * 1024 * 1024);
        await using var client = await Server.ConnectAndGoAsync("big");

        var reply = await client.ReadAsync(0, NbdProtocol.MaxPayloadLength + 1);

        Assert.Equal(NbdError.EINVAL, reply.Error);
        await AssertServedAsync(client);
    }

    [Theory, MemberData(nameof(ReplyKinds))]
    public async Task Write_over_32_MiB_is_drained_refused_with_EINVAL_and_session_stays_in_sync(bool structured)
    {
        Server.CreateVolume("big", 64L * 1024 * 1024);
        await using var client = await Server.ConnectAndGoAsync("big", structured, baseAllocation: false);
        // The payload is full of request headers: if the server parsed any of it, the replies would show it.
        var payload = new byte[NbdProtocol.MaxPayloadLength + 1];
        var bogus = new NbdRequest(NbdCommandFlags.None, NbdCommand.Write, 0xbad, 0, 4);
        for (int at = 0; at + NbdProtocol.RequestHeaderSize <= payload.Length; at += 32) bogus.WriteTo(payload.AsSpan(at));

        var reply = await client.WriteAsync(0, payload);

        Assert.Equal(NbdError.EINVAL, reply.Error);
        Assert.Equal(new byte[4096], (await client.ReadAsync(0, 4096)).Data);
        await AssertServedAsync(client);
    }

    [Theory]
    [InlineData((ushort)8)]   // NBD_CMD_RESIZE: never advertised
    [InlineData((ushort)9)]
    [InlineData((ushort)0xffff)]
    public async Task Unknown_command_replies_EINVAL_and_session_continues(ushort command)
    {
        await using var client = await Server.ConnectAndGoAsync(Export);

        var reply = await client.RequestAsync((NbdCommand)command, 0, 4096);

        Assert.Equal(NbdError.EINVAL, reply.Error);
        await AssertServedAsync(client);
    }

    [Theory]
    [InlineData(NbdCommand.Write, NbdCommandFlags.NoHole)]
    [InlineData(NbdCommand.Write, NbdCommandFlags.RequestOne)]
    [InlineData(NbdCommand.Read, NbdCommandFlags.FastZero)]
    [InlineData(NbdCommand.Trim, NbdCommandFlags.NoHole)]
    [InlineData(NbdCommand.BlockStatus, NbdCommandFlags.DontFragment)]
    [InlineData(NbdCommand.Flush, NbdCommandFlags.RequestOne)]
    [InlineData(NbdCommand.Cache, NbdCommandFlags.NoHole)]
    [InlineData(NbdCommand.Read, NbdCommandFlags.PayloadLength)] // extended headers were never negotiated
    [InlineData(NbdCommand.Read, (NbdCommandFlags)0x8000)]
    public async Task Flag_not_documented_for_the_command_replies_EINVAL_and_session_continues(NbdCommand command, NbdCommandFlags flags)
    {
        await using var client = await Server.ConnectAndGoAsync(Export);
        byte[] payload = command == NbdCommand.Write ? Pattern(4096, 9) : [];

        var reply = await client.RequestAsync(command, 0, command == NbdCommand.Flush ? 0u : 4096u, flags, payload);

        Assert.Equal(NbdError.EINVAL, reply.Error);
        Assert.Equal(new byte[4096], (await client.ReadAsync(0, 4096)).Data); // a refused WRITE wrote nothing
        await AssertServedAsync(client);
    }

    [Fact]
    public async Task Fua_is_accepted_on_every_command()
    {
        // "the server MUST accept all commands with this bit set (even by ignoring the bit)".
        await using var client = await Server.ConnectAndGoAsync(Export);

        Assert.Equal(NbdError.None, (await client.ReadAsync(0, 512, NbdCommandFlags.Fua)).Error);
        Assert.Equal(NbdError.None, (await client.RequestAsync(NbdCommand.Flush, 0, 0, NbdCommandFlags.Fua)).Error);
        Assert.Equal(NbdError.None, (await client.RequestAsync(NbdCommand.Trim, 0, 4096, NbdCommandFlags.Fua)).Error);
        Assert.Equal(NbdError.None, (await client.RequestAsync(NbdCommand.Cache, 0, 4096, NbdCommandFlags.Fua)).Error);
        Assert.Equal(NbdError.None, (await client.WriteZeroesAsync(0, 4096, NbdCommandFlags.Fua | NbdCommandFlags.NoHole)).Error);
        Assert.Equal(NbdError.None, (await client.BlockStatusAsync(0, 4096, NbdCommandFlags.Fua)).Error);
    }

    [Fact]
    public async Task Df_without_structured_replies_replies_EINVAL()
    {
        await using var client = await Server.ConnectAndGoAsync(Export, structuredReplies: false, baseAllocation: false);

        var reply = await client.ReadAsync(0, 4096, NbdCommandFlags.DontFragment);

        Assert.Equal(NbdError.EINVAL, reply.Error);
        await AssertServedAsync(client);
    }

    [Fact]
    public async Task Df_read_is_answered_with_one_content_chunk()
    {
        await using var client = await Server.ConnectAndGoAsync(Export);
        var data = Pattern(64 * 1024, 5);
        await client.WriteAsync(4096, data);

        var reply = await client.ReadAsync(0, 128 * 1024, NbdCommandFlags.DontFragment);

        Assert.Equal(1, reply.Chunks);
        Assert.Equal(data, reply.Data.AsSpan(4096, data.Length).ToArray());
    }

    [Fact]
    public async Task Flush_with_a_range_replies_EINVAL()
    {
        await using var client = await Server.ConnectAndGoAsync(Export);

        var reply = await client.RequestAsync(NbdCommand.Flush, 4096, 0);

        Assert.Equal(NbdError.EINVAL, reply.Error);
        await AssertServedAsync(client);
    }

    [Theory, MemberData(nameof(ReplyKinds))]
    public async Task Zero_length_read_is_answered_without_data_and_without_disconnecting(bool structured)
    {
        // Structured: OFFSET_DATA must carry at least one byte and a simple reply is not allowed for READ,
        // so the only valid answer is a lone NONE chunk (the client checks both rules).
        await using var client = await Server.ConnectAndGoAsync(Export, structured, baseAllocation: false);

        var reply = await client.ReadAsync(4096, 0);

        Assert.Equal(NbdError.None, reply.Error);
        Assert.Empty(reply.Data);
        await AssertServedAsync(client);
    }

    [Fact]
    public async Task Write_zeroes_with_and_without_NO_HOLE_reads_back_zeros()
    {
        await using var client = await Server.ConnectAndGoAsync(Export);
        await client.WriteAsync(0, Pattern(256 * 1024, 1));

        Assert.Equal(NbdError.None, (await client.WriteZeroesAsync(0, 64 * 1024)).Error);
        Assert.Equal(NbdError.None, (await client.WriteZeroesAsync(64 * 1024, 64 * 1024, NbdCommandFlags.NoHole)).Error);
        Assert.Equal(NbdError.None, (await client.WriteZeroesAsync(128 * 1024, 64 * 1024, NbdCommandFlags.FastZero)).Error);

        Assert.Equal(new byte[192 * 1024], (await client.ReadAsync(0, 192 * 1024)).Data);
        var status = await client.BlockStatusAsync(0, 256 * 1024);
        Assert.Equal(
            [
                new BlockExtent(64 * 1024, NbdAllocationFlags.Hole | NbdAllocationFlags.Zero), // may deallocate: a hole
                new BlockExtent(64 * 1024, 0),                                                  // NO_HOLE: stays allocated
                new BlockExtent(64 * 1024, NbdAllocationFlags.Hole | NbdAllocationFlags.Zero), // fast zero: punched
                new BlockExtent(64 * 1024, 0),
            ],
            status.Extents);
    }

    [Fact]
    public async Task Trim_reads_back_as_zeros_and_becomes_a_hole()
    {
        await using var client = await Server.ConnectAndGoAsync(Export);
        await client.WriteAsync(0, Pattern(64 * 1024, 1));

        Assert.Equal(NbdError.None, (await client.TrimAsync(16 * 1024, 16 * 1024)).Error);

        var data = (await client.ReadAsync(0, 64 * 1024)).Data;
        Assert.Equal(new byte[16 * 1024], data.AsSpan(16 * 1024, 16 * 1024).ToArray());
        Assert.Equal(Pattern(64 * 1024, 1).AsSpan(0, 16 * 1024).ToArray(), data.AsSpan(0, 16 * 1024).ToArray());
        var status = await client.BlockStatusAsync(16 * 1024, 16 * 1024);
        Assert.Equal(new BlockExtent(16 * 1024, NbdAllocationFlags.Hole | NbdAllocationFlags.Zero), Assert.Single(status.Extents));
    }

    [Fact]
    public async Task Bad_request_magic_closes_the_connection_and_other_clients_are_served()
    {
        await using var bystander = await Server.ConnectAndGoAsync(Export);
        await using var client = await Server.ConnectAndGoAsync(Export);
        var header = new byte[NbdProtocol.RequestHeaderSize];
        new NbdRequest(NbdCommandFlags.None, NbdCommand.Read, 1, 0, 512).WriteTo(header);
        header[0] ^= 0xff;

        await client.SendRawAsync(header);

        Assert.True(await client.WaitForCloseAsync());
        Assert.Equal([NbdRejection.BadRequestMagic], Server.Log.Rejections);
        await AssertServedAsync(bystander);
    }

    [Fact]
    public async Task Truncated_request_then_EOF_closes_the_connection_and_other_clients_are_served()
    {
        await using var bystander = await Server.ConnectAndGoAsync(Export);
        await using var client = await Server.ConnectAndGoAsync(Export);
        var header = new byte[NbdProtocol.RequestHeaderSize];
        new NbdRequest(NbdCommandFlags.None, NbdCommand.Read, 1, 0, 512).WriteTo(header);

        await client.SendRawAsync(header[..20]);
        await client.CloseSendAsync();

        Assert.True(await client.WaitForCloseAsync());
        Assert.Equal([NbdRejection.TruncatedRequest], Server.Log.Rejections);
        await AssertServedAsync(bystander);
    }

    [Fact]
    public async Task Client_vanishing_mid_write_payload_writes_nothing_and_other_clients_are_served()
    {
        await using var bystander = await Server.ConnectAndGoAsync(Export);
        var client = await Server.ConnectAndGoAsync(Export);
        var header = new byte[NbdProtocol.RequestHeaderSize];
        new NbdRequest(NbdCommandFlags.None, NbdCommand.Write, 1, 0, 64 * 1024).WriteTo(header);

        await client.SendRawAsync(header.Concat(Pattern(30 * 1024, 1)).ToArray());
        await client.DisposeAsync();

        await Wait.UntilAsync(() => Server.Server.ConnectionCount == 1, TimeSpan.FromSeconds(10), "the server");
        Assert.Equal([NbdRejection.TruncatedRequest], Server.Log.Rejections);
        Assert.Equal(new byte[64 * 1024], (await bystander.ReadAsync(0, 64 * 1024)).Data);
        await AssertServedAsync(bystander);
    }

    [Fact]
    public async Task Client_vanishing_before_reading_its_replies_releases_the_volume()
    {
        // The replies cannot be delivered, and what is left in the output buffer cannot be flushed
        // when the connection closes; the volume's lease must be released all the same.
        for (int i = 0; i < 5; i++)
        {
            var client = await Server.ConnectAndGoAsync(Export);
            for (int r = 0; r < 4; r++) await client.SendAsync(NbdCommand.Read, 0, 1024 * 1024);
            await client.DisposeAsync();
        }

        await Wait.UntilAsync(() => Server.Server.ConnectionCount == 0, TimeSpan.FromSeconds(10), "the server");
        Assert.Equal(0, Server.Store.Status(Export).OpenCount);
        Server.Store.Delete(Export);
    }

    [Fact]
    public async Task Disconnect_finishes_requests_in_flight_then_closes()
    {
        await using var client = await Server.ConnectAndGoAsync(Export);
        var cookies = new List<ulong>();
        for (int i = 0; i < 8; i++)
            cookies.Add(await client.SendAsync(NbdCommand.Write, (ulong)i * 65536, 65536, NbdCommandFlags.None, Pattern(65536, (byte)i)));

        await client.DisconnectAsync();

        var replies = new List<NbdReply>();
        for (int i = 0; i < cookies.Count; i++) replies.Add(await client.ReceiveAsync());
        Assert.Equal(cookies.Order(), replies.Select(r => r.Cookie).Order());
        Assert.All(replies, r => Assert.Equal(NbdError.None, r.Error));
        Assert.True(await client.WaitForCloseAsync());
        await using var again = await Server.ConnectAndGoAsync(Export);
        for (int i = 0; i < 8; i++) Assert.Equal(Pattern(65536, (byte)i), (await again.ReadAsync((ulong)i * 65536, 65536)).Data);
        Assert.Empty(Server.Log.Rejections);
    }

    [Fact]
    public async Task Pipelined_requests_are_each_answered_once_matched_by_cookie()
    {
        await using var client = await Server.ConnectAndGoAsync(Export);
        var expected = new Dictionary<ulong, (NbdCommand Command, ulong Offset)>();
        for (int i = 0; i < 32; i++)
        {
            ulong offset = (ulong)i * 16384;
            expected[await client.SendAsync(NbdCommand.Write, offset, 16384, NbdCommandFlags.None, Pattern(16384, (byte)i))] = (NbdCommand.Write, offset);
            expected[await client.SendAsync(NbdCommand.BlockStatus, 0, (uint)Size)] = (NbdCommand.BlockStatus, 0);
        }

        var seen = new HashSet<ulong>();
        while (seen.Count < expected.Count)
        {
            var reply = await client.ReceiveAsync();
            Assert.True(seen.Add(reply.Cookie));
            Assert.Equal(expected[reply.Cookie].Command, reply.Request.Command);
            Assert.Equal(NbdError.None, reply.Error);
        }
        for (int i = 0; i < 32; i++) Assert.Equal(Pattern(16384, (byte)i), (await client.ReadAsync((ulong)i * 16384, 16384)).Data);
    }
}
