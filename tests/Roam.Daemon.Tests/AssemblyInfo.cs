// roamd and these tests are Linux-only (Unix sockets, SEEK_DATA, qemu tools).
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
