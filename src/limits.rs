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

// Local messaging (broker work): bounds of the message path.

/// Byte budget of the shared work queue (topic + payload of queued items), bytes. With 1024
/// items of up to 128 KiB the item bound alone would allow 128 MiB; this keeps a flood of large
/// messages within what a 64 MB router can spare. Over it, new items are dropped and counted.
pub const MAX_WORK_QUEUE_BYTES: usize = 4 * 1024 * 1024;

/// Longest topic name or filter accepted from a device, bytes (the AWS IoT Core limit, 256).
pub const MAX_LOCAL_TOPIC_BYTES: usize = 256;

/// Largest MQTT remaining length read from a device, bytes: a PUBLISH with the longest topic,
/// a packet id and the largest payload. Checked on the fixed header before buffering; a bigger
/// PUBLISH is skipped without buffering (counted as oversize), any other big packet closes.
pub const MAX_LOCAL_PACKET_BYTES: usize = MAX_PAYLOAD_BYTES + MAX_LOCAL_TOPIC_BYTES + 4;

/// Messages waiting in one device connection's outbound queue. A subscriber that does not read
/// loses its own newest messages beyond this (counted as slow-subscriber drops).
pub const SESSION_OUTBOUND_MESSAGES: usize = 256;

/// Bytes waiting in one device connection's outbound queue (frames shared with other
/// subscribers count fully here).
pub const SESSION_OUTBOUND_BYTES: usize = 512 * 1024;

/// Topic filters one device may hold at once (SUBSCRIBE beyond this gets 0x80).
pub const SESSION_MAX_FILTERS: usize = 64;

/// MQTT frames handled for one connection per wake-up before yielding to other tasks, so one
/// busy device cannot starve the loop.
pub const FRAMES_PER_WAKE: usize = 32;

/// Ciphertext read from one connection per wake-up, bytes (same reason).
pub const TLS_BYTES_PER_WAKE: usize = 64 * 1024;

/// Time allowed for the TLS handshake after accept, seconds.
pub const TLS_HANDSHAKE_TIMEOUT_SECS: u64 = 10;

/// Time allowed between the end of the TLS handshake and the MQTT CONNECT, seconds.
pub const CONNECT_TIMEOUT_SECS: u64 = 5;

/// Keep-alive enforcement: a client is dropped after this many keep-alive periods of silence
/// (MQTT 3.1.1 §3.1.2.10: "one and a half times the Keep Alive time period"), in halves.
pub const KEEP_ALIVE_GRACE_HALVES: u64 = 3;

/// Messages the dispatcher routes per wake-up before yielding.
pub const DISPATCH_PER_WAKE: usize = 64;

/// Interval at which the daemon rewrites its status file when something changed, milliseconds.
pub const STATUS_INTERVAL_MS: u64 = 1000;
