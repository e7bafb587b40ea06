using System.Text.Json.Serialization;

namespace Roam.Storage.Volumes;

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = true)]
[JsonSerializable(typeof(VolumeInfo))]
internal sealed partial class StorageJsonContext : JsonSerializerContext;
