namespace Roam.Storage.Volumes;

/// <summary>A volume's metadata as kept on disk (NAME.json beside NAME.raw).</summary>
public sealed record VolumeInfo(string Name, long Size, Guid Id, DateTimeOffset Created);

/// <summary>A volume as the control API shows it: metadata plus live state.</summary>
public sealed record VolumeStatus(string Name, long Size, Guid Id, DateTimeOffset Created, long AllocatedBytes, int OpenCount);
