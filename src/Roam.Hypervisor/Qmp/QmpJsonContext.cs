using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Roam.Hypervisor.Qmp;

/// <summary>
/// Source-generated (de)serializers for the QMP records. QAPI names are kebab-case, a few older
/// commands aside (migrate_cancel, system_powerdown) whose names are strings, not members.
/// Null members are omitted so optional QAPI arguments stay unset.
/// </summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.KebabCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    NumberHandling = JsonNumberHandling.Strict)]
[JsonSerializable(typeof(JsonElement))]
[JsonSerializable(typeof(JsonObject))]
[JsonSerializable(typeof(QmpGreeting))]
[JsonSerializable(typeof(QmpVersionInfo))]
[JsonSerializable(typeof(StatusInfo))]
[JsonSerializable(typeof(KvmInfo))]
[JsonSerializable(typeof(MigrationInfo))]
[JsonSerializable(typeof(MigrationCapabilityStatus[]))]
[JsonSerializable(typeof(MigrateSetCapabilitiesArguments))]
[JsonSerializable(typeof(MigrationParameters))]
[JsonSerializable(typeof(MigrateArguments))]
[JsonSerializable(typeof(MigrateIncomingArguments))]
[JsonSerializable(typeof(MigrateContinueArguments))]
[JsonSerializable(typeof(BlockInfo[]))]
[JsonSerializable(typeof(BlockdevAddNbdArguments))]
[JsonSerializable(typeof(BlockdevDelArguments))]
[JsonSerializable(typeof(DeviceAddArguments))]
[JsonSerializable(typeof(DeviceDelArguments))]
[JsonSerializable(typeof(SetLinkArguments))]
[JsonSerializable(typeof(QmpEmpty))]
internal sealed partial class QmpJsonContext : JsonSerializerContext;
