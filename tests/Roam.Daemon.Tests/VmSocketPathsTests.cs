using System.Net.Sockets;
using System.Text;
using Roam.Daemon.Vms;

namespace Roam.Daemon.Tests;

public sealed class VmSocketPathsTests
{
    [Fact]
    public void A_short_data_dir_keeps_the_socket_beside_the_definition()
    {
        var path = VmSocketPaths.For("/var/lib/roam/vms", "work.migration.sock");
        Assert.Equal("/var/lib/roam/vms/work.migration.sock", path);
    }

    [Fact]
    public void A_path_too_long_for_sockaddr_un_moves_to_a_fixed_name_in_tmp()
    {
        var deep = "/srv/" + new string('d', 120) + "/vms";
        var path = VmSocketPaths.For(deep, "work.qmp");
        Assert.StartsWith("/tmp/roam-", path, StringComparison.Ordinal);
        Assert.True(Encoding.UTF8.GetByteCount(path) <= VmSocketPaths.MaxBytes);
        // The same VM gets the same name again (a restarted roamd finds its QEMU), another VM or kind another one.
        Assert.Equal(path, VmSocketPaths.For(deep, "work.qmp"));
        Assert.NotEqual(path, VmSocketPaths.For(deep, "work.migration.sock"));
        Assert.NotEqual(path, VmSocketPaths.For(deep, "home.qmp"));
    }

    [Fact]
    public void A_socket_at_the_longest_allowed_path_binds_and_a_stale_one_is_replaced()
    {
        var dir = Directory.CreateTempSubdirectory("roam-sock-").FullName;
        try
        {
            var fill = VmSocketPaths.MaxBytes - Encoding.UTF8.GetByteCount(dir) - 1 - ".sock".Length;
            var path = VmSocketPaths.For(dir, new string('v', fill) + ".sock");
            Assert.Equal(VmSocketPaths.MaxBytes, Encoding.UTF8.GetByteCount(path));
            for (int i = 0; i < 2; i++)
            {
                // A second bind fails on the file the first left behind unless it is removed first.
                VmSocketPaths.DeleteStale(path);
                using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                listener.Bind(new UnixDomainSocketEndPoint(path));
                Assert.True(File.Exists(path));
            }
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
