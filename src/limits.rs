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

/// Budget bytes charged per spooled message on top of its topic and payload (cloud work): covers
/// the index entry (40 bytes, grown by 1/8 at a time) and one allocation header, so the spool's
/// real memory stays within `GG_CONFIG_MAX_SIZE_BYTES`. Checked by a unit test.
pub const SPOOL_RECORD_OVERHEAD_BYTES: u64 = 64;

/// Longest topic the spool stores, bytes (MQTT's u16 length; AWS IoT allows 256).
pub const SPOOL_MAX_TOPIC_BYTES: usize = 65_535;

/// FileSystem spool: a segment file is closed after this many bytes (plus one record), bytes.
/// Small enough that acknowledged data is deleted soon, big enough to keep file counts low.
pub const SPOOL_SEGMENT_BYTES: u64 = 64 * 1024;

/// FileSystem spool: how often the acknowledged-head marker is rewritten, ms. A crash can
/// resend at most this much already-acknowledged traffic (at-least-once allows it).
pub const SPOOL_HEAD_FLUSH_MS: u64 = 1_000;

/// Cloud: subscriptions per MQTT connection (AWS IoT Core's per-connection limit, guide §6.4);
/// more cloud-sourced filters open `-c01`, `-c02`, ...
pub const CLOUD_MAX_SUBSCRIPTIONS_PER_CONNECTION: usize = 50;

/// Cloud: most `-cNN` connections (10,000 group subscriptions / 50).
pub const CLOUD_MAX_CONNECTIONS: usize = 200;

/// Cloud: QoS 1 publishes awaiting PUBACK at once on `-c00`, messages.
pub const CLOUD_MAX_INFLIGHT: usize = 16;

/// Cloud: largest MQTT packet accepted from the broker, bytes (128 KiB payload plus topic).
pub const CLOUD_MAX_PACKET_BYTES: usize = MAX_PAYLOAD_BYTES + 65_536 + 16;

/// Cloud: wait for CONNACK, seconds (not an "operation" in mqttOperationTimeout's sense).
pub const CLOUD_CONNACK_TIMEOUT_SECS: u64 = 30;

/// Cloud: TCP connect, proxy CONNECT and TLS handshake together, seconds.
pub const CLOUD_CONNECT_TIMEOUT_SECS: u64 = 30;

/// Cloud: first reconnect delay, ms; doubles per failure up to mqttMaxConnectionRetryInterval.
pub const CLOUD_BACKOFF_BASE_MS: u64 = 1_000;

/// Cloud: largest HTTP CONNECT reply header from a proxy, bytes.
pub const CLOUD_PROXY_REPLY_MAX_BYTES: usize = 8 * 1024;
