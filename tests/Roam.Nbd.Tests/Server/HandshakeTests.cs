using System.Buffers.Binary;
using System.Text;
using Roam.Nbd.Protocol;
using Roam.Testing.Nbd;

namespace Roam.Nbd.Tests.Server;

/// <summary>Fixed newstyle negotiation, checked option by option against doc/proto.md.</summary>
public sealed class HandshakeTests : ServerTestBase
{
    [Fact]
    public async Task Greeting_advertises_fixed_newstyle_and_no_zeroes_only()
    {
        await using var client = await Server.ConnectAsync();

        var flags = await client.ReadGreetingAsync();

        Assert.Equal(NbdHandshakeFlags.FixedNewstyle | NbdHandshakeFlags.NoZeroes, flags);
    }

    [Fact]
    public async Task Go_enters_transmission_with_export_info_and_block_sizes()
    {
        await using var client = await HaggleAsync();
        await client.GoAsync(Export, structuredReplies: true, baseAllocation: true);

        Assert.Equal((ulong)Size, client.ExportSize);
        var expected = NbdTransmissionFlags.HasFlags | NbdTransmissionFlags.SendFlush | NbdTransmissionFlags.SendFua
            | NbdTransmissionFlags.SendTrim | NbdTransmissionFlags.SendWriteZeroes | NbdTransmissionFlags.SendFastZero
            | NbdTransmissionFlags.SendDf | NbdTransmissionFlags.CanMultiConn | NbdTransmissionFlags.SendCache;
        Assert.Equal(expected, client.TransmissionFlags);
        Assert.Equal((1u, 4096u, (uint)NbdProtocol.MaxPayloadLength), client.BlockSizes);
        await AssertServedAsync(client);
    }

    [Fact]
    public async Task Df_is_not_advertised_without_structured_replies()
    {
        await using var client = await HaggleAsync();
        await client.GoAsync(Export, structuredReplies: false, baseAllocation: false);

        Assert.False(client.TransmissionFlags.HasFlag(NbdTransmissionFlags.SendDf));
        await AssertServedAsync(client);
    }

    [Fact]
    public async Task Info_describes_the_export_and_negotiation_continues()
    {
        await using var client = await HaggleAsync();

        var replies = await client.NegotiateAsync(NbdOption.Info, RawNbdClient.InfoRequest(Export, NbdInfo.Name));

        Assert.Equal(NbdOptionReply.Ack, replies[^1].Type);
        client.ApplyInfo(replies);
        Assert.Equal((ulong)Size, client.ExportSize);
        var name = Assert.Single(replies, r => r.Type == NbdOptionReply.Info && BinaryPrimitives.ReadUInt16BigEndian(r.Data) == (ushort)NbdInfo.Name);
        Assert.Equal(Export, Encoding.UTF8.GetString(name.Data, 2, name.Data.Length - 2));
        await client.GoAsync(Export);
        await AssertServedAsync(client);
    }

    [Fact]
    public async Task Go_with_unknown_export_replies_ERR_UNKNOWN_without_info_and_negotiation_continues()
    {
        await using var client = await HaggleAsync();

        var replies = await client.NegotiateAsync(NbdOption.Go, RawNbdClient.InfoRequest("nosuch"));

        var reply = Assert.Single(replies);
        Assert.Equal(NbdOptionReply.ErrUnknown, reply.Type);
        await client.GoAsync(Export);
        await AssertServedAsync(client);
    }

    [Fact]
    public async Task Go_whose_request_count_does_not_match_its_length_replies_ERR_INVALID()
    {
        await using var client = await HaggleAsync();
        var data = RawNbdClient.InfoRequest(Export, NbdInfo.BlockSize);
        BinaryPrimitives.WriteUInt16BigEndian(data.AsSpan(4 + Export.Length), 3); // claims 3 requests, carries 1

        var replies = await client.NegotiateAsync(NbdOption.Go, data);

        Assert.Equal(NbdOptionReply.ErrInvalid, Assert.Single(replies).Type);
        await client.GoAsync(Export);
        await AssertServedAsync(client);
    }

    [Fact]
    public async Task Unknown_option_replies_ERR_UNSUP_and_negotiation_continues()
    {
        await using var client = await HaggleAsync();

        foreach (uint option in new uint[] { 4 /* PEEK_EXPORT, withdrawn */, 11 /* EXTENDED_HEADERS, not implemented */, 99, 0x7fffffff })
        {
            await client.SendOptionAsync(option, new byte[] { 1, 2, 3, 4, 5 }, 5, NbdProtocol.OptionMagic);
            var reply = await client.ReadOptionReplyAsync();
            Assert.Equal((NbdOption)option, reply.Option);
            Assert.Equal(NbdOptionReply.ErrUnsupported, reply.Type);
        }
        await client.GoAsync(Export);
        await AssertServedAsync(client);
    }

    [Fact]
    public async Task StartTls_is_refused_with_ERR_UNSUP_and_negotiation_continues_in_plaintext()
    {
        // NOTLS mode: "If the server receives NBD_OPT_STARTTLS it MUST respond with NBD_REP_ERR_POLICY (if it
        // does not support TLS for policy reasons), NBD_REP_ERR_UNSUP (if it does not support the
        // NBD_OPT_STARTTLS option at all)". Roam has no TLS code at all, so ERR_UNSUP.
        await using var client = await HaggleAsync();

        var replies = await client.NegotiateAsync(NbdOption.StartTls);

        Assert.Equal(NbdOptionReply.ErrUnsupported, Assert.Single(replies).Type);
        await client.GoAsync(Export);
        await AssertServedAsync(client);
    }

    [Fact]
    public async Task List_names_every_export_then_acks()
    {
        Server.CreateVolume("second", 64 * 1024);
        await using var client = await HaggleAsync();

        var replies = await client.NegotiateAsync(NbdOption.List);

        Assert.Equal(NbdOptionReply.Ack, replies[^1].Type);
        Assert.All(replies[..^1], r => Assert.Equal(NbdOptionReply.Server, r.Type));
        Assert.Equal(["disk", "second"], replies[..^1].Select(r => r.ExportName).Order());
    }

    [Fact]
    public async Task List_with_data_replies_ERR_INVALID_and_negotiation_continues()
    {
        await using var client = await HaggleAsync();

        var replies = await client.NegotiateAsync(NbdOption.List, new byte[] { 0, 0, 0, 0 });

        Assert.Equal(NbdOptionReply.ErrInvalid, Assert.Single(replies).Type);
        await client.GoAsync(Export);
        await AssertServedAsync(client);
    }

    [Fact]
    public async Task Structured_reply_with_data_replies_ERR_INVALID()
    {
        await using var client = await HaggleAsync();

        var replies = await client.NegotiateAsync(NbdOption.StructuredReply, new byte[] { 1 });

        Assert.Equal(NbdOptionReply.ErrInvalid, Assert.Single(replies).Type);
        await client.GoAsync(Export, structuredReplies: false, baseAllocation: false);
        await AssertServedAsync(client);
    }

    [Fact]
    public async Task Abort_is_acknowledged_and_the_server_closes()
    {
        await using var client = await HaggleAsync();

        var replies = await client.NegotiateAsync(NbdOption.Abort);

        Assert.Equal(NbdOptionReply.Ack, Assert.Single(replies).Type);
        Assert.True(await client.WaitForCloseAsync());
        Assert.Empty(Server.Log.Rejections);
    }

    [Fact]
    public async Task Export_name_enters_transmission_without_the_zeroes_when_both_sides_agreed()
    {
        await using var client = await HaggleAsync(NbdClientFlags.FixedNewstyle | NbdClientFlags.NoZeroes);

        await client.ExportNameAsync(Export, expectZeroes: false);

        Assert.Equal((ulong)Size, client.ExportSize);
        await AssertServedAsync(client);
    }

    [Fact]
    public async Task Export_name_sends_124_zero_bytes_when_the_client_did_not_ask_otherwise()
    {
        await using var client = await HaggleAsync(NbdClientFlags.FixedNewstyle);

        await client.ExportNameAsync(Export, expectZeroes: true);

        Assert.Equal((ulong)Size, client.ExportSize);
        await AssertServedAsync(client);
    }

    [Fact]
    public async Task Export_name_with_unknown_name_closes_the_connection_and_other_clients_are_served()
    {
        await using var bystander = await Server.ConnectAndGoAsync(Export);
        await using var client = await HaggleAsync();

        await client.SendOptionAsync(NbdOption.ExportName, Encoding.UTF8.GetBytes("nosuch"));

        Assert.True(await client.WaitForCloseAsync());
        Assert.Equal([NbdRejection.UnknownExport], Server.Log.Rejections);
        await AssertServedAsync(bystander);
    }

    [Fact]
    public async Task Export_name_too_long_to_be_real_closes_without_an_option_reply()
    {
        // NBD_OPT_EXPORT_NAME is the one option that never gets an option reply, even an error.
        await using var client = await HaggleAsync();

        // The server refuses on the declared length and may close before the name is all sent: a broken pipe then.
        var sending = await Record.ExceptionAsync(() => client.SendOptionAsync(NbdOption.ExportName, new byte[NbdProtocol.MaxOptionLength + 1]));
        Assert.True(sending is null or IOException, $"sending failed otherwise than by the connection ending: {sending}");

        // EOF, or a reset when the server closed with the unread name still in its socket buffer.
        var ex = await Record.ExceptionAsync(client.ReadOptionReplyAsync);
        Assert.True(ex is EndOfStreamException or IOException, $"expected the connection to end, got {ex}");
        Assert.Equal([NbdRejection.OptionTooLong], Server.Log.Rejections);
    }

    [Fact]
    public async Task Oversized_option_is_drained_and_refused_with_ERR_TOO_BIG_and_negotiation_continues()
    {
        await using var client = await HaggleAsync();

        var replies = await client.NegotiateAsync(NbdOption.Info, new byte[NbdProtocol.MaxOptionLength + 100]);

        Assert.Equal(NbdOptionReply.ErrTooBig, Assert.Single(replies).Type);
        await client.GoAsync(Export);
        await AssertServedAsync(client);
    }

    [Fact]
    public async Task Option_claiming_more_than_16_MiB_closes_the_connection()
    {
        await using var client = await HaggleAsync();

        await client.SendOptionAsync((uint)NbdOption.Info, default, 17 * 1024 * 1024, NbdProtocol.OptionMagic);

        Assert.True(await client.WaitForCloseAsync());
        Assert.Equal([NbdRejection.OptionTooLong], Server.Log.Rejections);
    }

    [Fact]
    public async Task Bad_option_magic_closes_the_connection_and_other_clients_are_served()
    {
        await using var bystander = await Server.ConnectAndGoAsync(Export);
        await using var client = await HaggleAsync();

        await client.SendOptionAsync((uint)NbdOption.List, default, 0, NbdProtocol.OptionMagic ^ 1);

        Assert.True(await client.WaitForCloseAsync());
        Assert.Equal([NbdRejection.BadOptionMagic], Server.Log.Rejections);
        await AssertServedAsync(bystander);
    }

    [Theory]
    [InlineData(NbdClientFlags.FixedNewstyle | (NbdClientFlags)4)]
    [InlineData((NbdClientFlags)0x80000000)]
    public async Task Unknown_client_flags_close_the_connection_and_other_clients_are_served(NbdClientFlags flags)
    {
        await using var bystander = await Server.ConnectAndGoAsync(Export);
        await using var client = await Server.ConnectAsync();
        await client.ReadGreetingAsync();

        await client.SendClientFlagsAsync(flags);

        Assert.True(await client.WaitForCloseAsync());
        Assert.Equal([NbdRejection.UnknownClientFlags], Server.Log.Rejections);
        await AssertServedAsync(bystander);
    }

    [Fact]
    public async Task Client_closing_in_the_middle_of_an_option_is_dropped_quietly()
    {
        await using var bystander = await Server.ConnectAndGoAsync(Export);
        await using var client = await HaggleAsync();

        await client.SendOptionAsync((uint)NbdOption.Go, new byte[] { 0, 0 }, 20, NbdProtocol.OptionMagic);
        await client.CloseSendAsync();

        Assert.True(await client.WaitForCloseAsync());
        Assert.Equal([NbdRejection.TruncatedHandshake], Server.Log.Rejections);
        await AssertServedAsync(bystander);
    }
}
