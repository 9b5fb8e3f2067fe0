//! Every capacity, size limit and timeout in sprig, in one place.
//!
//! Each constant says its unit and where the number comes from. Values that Greengrass makes
//! configurable live in `config` with these as defaults; the rest are fixed here.

/// Largest config.json accepted, in bytes. A real one is under 4 KiB; anything bigger is a
/// mistake (or an attack) and is refused before parsing.
pub const MAX_CONFIG_JSON_BYTES: usize = 64 * 1024;

/// Largest group.json accepted, in bytes. 200 devices and 10,000 subscriptions with long ARNs
/// fit in about 3 MiB.
pub const MAX_GROUP_JSON_BYTES: usize = 4 * 1024 * 1024;

/// Deepest JSON nesting accepted in any document sprig reads.
pub const MAX_JSON_DEPTH: usize = 32;

/// Devices in one group (guide: "up to 200 devices" per group).
pub const MAX_GROUP_DEVICES: usize = 200;

/// Subscriptions in one group (Greengrass quota: 10,000 per subscription definition).
pub const MAX_GROUP_SUBSCRIPTIONS: usize = 10_000;

/// Lambda functions in one group.
pub const MAX_GROUP_FUNCTIONS: usize = 200;

/// Default `runtime.maxWorkItemCount`: the shared work queue's capacity, in items.
pub const DEFAULT_MAX_WORK_ITEM_COUNT: u32 = 1024;

/// Largest MQTT payload accepted, in bytes (the AWS IoT Core limit, 128 KiB).
pub const MAX_PAYLOAD_BYTES: usize = 128 * 1024;

/// Default cap on simultaneous local device connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 200;

/// Default local MQTT port (`coreThing.ggMqttPort`).
pub const DEFAULT_GG_MQTT_PORT: u16 = 8883;

/// Default IPC port for Lambda functions (`coreThing.ggDaemonPort`).
pub const DEFAULT_GG_DAEMON_PORT: u16 = 8000;

/// Default MQTT keep-alive to the cloud, seconds (`coreThing.keepAlive`, 30–1200).
pub const DEFAULT_KEEP_ALIVE_SECS: u16 = 600;

/// Default cap on the cloud reconnect back-off, seconds (`mqttMaxConnectionRetryInterval`).
pub const DEFAULT_MQTT_MAX_RETRY_INTERVAL_SECS: u32 = 60;

/// Default and minimum `coreThing.mqttOperationTimeout`, seconds.
pub const DEFAULT_MQTT_OPERATION_TIMEOUT_SECS: u32 = 5;

/// Default spool budget (`GG_CONFIG_MAX_SIZE_BYTES`), bytes: the guide's "2.5 MB".
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 2_621_440;

/// Smallest spool budget the core starts with ("Spool size should be at least 262144 bytes.").
pub const MIN_SPOOL_MAX_BYTES: u64 = 262_144;

/// Default log space per component, KB (guide: LoggerDefinition default 128 KB... for FileSystem).
pub const DEFAULT_LOG_SPACE_KB: u64 = 128;

/// Largest `runtime.maxWorkItemCount` accepted, items. Each queued item holds up to one payload,
/// so the cap bounds the queue's worst case; 65536 is far above what a router can use.
pub const MAX_WORK_ITEM_COUNT: u32 = 65_536;

/// Largest `sprig.maxConnections` accepted: each connection costs a TLS session (~40 KiB).
pub const MAX_CONNECTIONS_CAP: usize = 4096;

/// Default `runtime.maxConcurrentLimit` and `runtime.lruSize` (Greengrass v1.11: 25 workers).
pub const DEFAULT_LAMBDA_WORKERS: u32 = 25;

/// Default `runtime.postStartHealthCheckTimeout`, milliseconds (guide: 30000).
pub const DEFAULT_POST_START_HEALTH_CHECK_MS: u64 = 30_000;

/// Default `coreThing.systemComponentAuthTimeout`, milliseconds (allowed 500–5000).
pub const DEFAULT_SYSTEM_COMPONENT_AUTH_TIMEOUT_MS: u32 = 5_000;

/// Default `system.shadowSyncTimeout`, seconds (guide troubleshooting: default 5).
pub const DEFAULT_SHADOW_SYNC_TIMEOUT_SECS: u32 = 5;

/// Default validity of the local MQTT server certificate, days (guide: 7–30, default 7).
pub const DEFAULT_SERVER_CERT_VALIDITY_DAYS: u32 = 7;

/// Default Lambda timeout, seconds (`FunctionConfiguration.Timeout`, guide: 3 s).
pub const DEFAULT_FUNCTION_TIMEOUT_SECS: u32 = 3;

/// Resource access policies per function (guide: "max 10 per function").
pub const MAX_FUNCTION_RESOURCES: usize = 10;

/// Resources in one group (guide: "Max 50 resources per group").
pub const MAX_GROUP_RESOURCES: usize = 50;
