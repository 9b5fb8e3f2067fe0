//! Every capacity, size limit and timeout in sprig, in one place.
//!
//! Each constant says its unit and where the number comes from. Values that Greengrass makes
//! configurable live in `config` with these as defaults; the rest are fixed here.

/// Largest config.json accepted, in bytes. A real one is under 4 KiB; anything bigger is a
/// mistake (or an attack) and is refused before parsing.
pub const MAX_CONFIG_JSON_BYTES: usize = 64 * 1024;

/// Largest group.json accepted, in bytes. 200 devices and 10,000 subscriptions with long ARNs
/// fit in about 3 MiB (a 2.1 MB one: `sprig check` 0.12 s, 7.0 MB peak RSS on x86_64, musl
/// release; 13.6 MB before the compact JSON tree, issue 13 §7).
pub const MAX_GROUP_JSON_BYTES: usize = 4 * 1024 * 1024;

/// Deepest JSON nesting accepted in any document sprig reads.
pub const MAX_JSON_DEPTH: usize = 32;

// ---- The group-parse transient (issue 13 §7: src/json.rs `Doc`) ----

/// Largest document `json::Doc` can hold, in bytes (exclusive): its 8-byte nodes keep source
/// offsets and node indexes in 28 bits (256 MiB). Far above every caller's own limit
/// (`MAX_GROUP_JSON_BYTES` is the largest); a bigger one is refused as too large.
pub const JSON_TREE_MAX_BYTES: usize = 1 << 28;

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

/// Longest log line written, bytes (longer messages are cut): keeps one record bounded.
pub const MAX_LOG_LINE_BYTES: usize = 2048;

/// Log files held open at once (system components + Lambdas); when full all are closed and
/// reopened on demand.
pub const MAX_OPEN_LOG_FILES: usize = 32;

/// After SIGTERM, how long components get to stop before the daemon exits anyway (the issue
/// asks for a clean shutdown within a second).
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_millis(800);

/// Child exits (reaped on SIGCHLD) queued for the Lambda runner; more are dropped and counted.
pub const MAX_QUEUED_CHILD_EXITS: usize = 64;

/// How long `sprig stop` waits for the daemon to exit after SIGTERM.
pub const STOP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

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

// pki (certificates)

/// Largest PEM certificate or key file read, bytes. A chain of a few certificates is under 8 KiB.
pub const MAX_PEM_FILE_BYTES: usize = 64 * 1024;

/// Largest CA certificate file read (caPath, and the system bundle trusted for an `https://`
/// proxy), bytes: Debian's /etc/ssl/certs/ca-certificates.crt is about 220 KiB.
pub const MAX_CA_FILE_BYTES: usize = 1024 * 1024;

/// Non-loopback interface addresses named in the server certificate (SANs); more are left out.
pub const MAX_SERVER_CERT_ADDRS: usize = 64;

/// Shortest and longest validity of the self-issued server certificate, days (issue 3 §1:
/// "7–30, default 7", the guide's rotation period being 7 days).
pub const MIN_SERVER_CERT_VALIDITY_DAYS: u32 = 7;
pub const MAX_SERVER_CERT_VALIDITY_DAYS: u32 = 30;

/// A self-issued server certificate is replaced when it has less than this left, seconds (1 day).
pub const SERVER_CERT_RENEW_BEFORE_SECS: u64 = 86_400;

/// How often the broker asks `pki::needs_reissue` (expiry, interface addresses), seconds.
pub const SERVER_CERT_RECHECK_SECS: u64 = 60;

/// Certificates start this long before they are issued, seconds: tolerates clocks a bit behind.
pub const CERT_BACKDATE_SECS: u64 = 3600;

/// Validity of the demo's CA, core and device certificates, days (10 years).
pub const DEMO_CERT_VALIDITY_DAYS: u32 = 3650;

/// Cloud: wait for one DNS answer, ms (the C library's default is 5 s; a router's resolver
/// answers in well under a second or not at all).
pub const CLOUD_DNS_TIMEOUT_MS: u64 = 2_000;

/// Cloud: rounds over the name servers in /etc/resolv.conf before a connect attempt fails.
pub const CLOUD_DNS_ATTEMPTS: usize = 2;

// Backpressure and per-connection footprint (issue 13).

/// Device connections paused by a full work queue resume once the dispatcher has drained it to
/// this share of both its bounds (`maxWorkItemCount`, `MAX_WORK_QUEUE_BYTES`), percent. Below
/// 100 so a freed slot is not won by whichever connection polls first: all waiting connections
/// resume together (issue 13 §6: "every connection alike, so no one publisher starves").
pub const WORK_QUEUE_RESUME_PERCENT: usize = 50;

/// Reply buffer a device session keeps between writes, bytes: a PUBACK is 4, a PINGRESP 2, a
/// SUBACK 4 + one per filter; a bigger one (many filters at once) is given back after sending.
pub const SESSION_REPLY_KEEP_BYTES: usize = 64;

/// Frame slots a drained device outbox keeps, frames: up to here the slots stay (a steady
/// trickle reuses them without reallocating); a bigger queue left by a burst is given back when
/// it empties, so an idle device holds none of the `SESSION_OUTBOUND_MESSAGES` slots.
pub const SESSION_OUTBOX_KEEP_FRAMES: usize = 8;

// TLS buffers of a device connection (issue 13 §1: src/broker/tlsconn.rs, rustls's unbuffered
// API with buffers sprig owns, empty while the device is idle).

/// Ciphertext read from a device socket at once, bytes, into one buffer the thread's
/// connections share (not one per connection): rustls's own read size (`READ_SIZE` in its
/// deframer).
pub const TLS_READ_CHUNK_BYTES: usize = 4096;

/// Largest emptied TLS output buffer kept for reuse, bytes: one per thread (not per
/// connection), so that sending a message does not allocate; two records of the largest size.
pub const TLS_SPARE_OUTPUT_MAX_BYTES: usize = 2 * (16 * 1024 + 256 + 5);

/// Largest TLS record sprig buffers, bytes: a 5-byte header and at most 2^14 + 2048 bytes of
/// ciphertext (RFC 5246 §6.2.3; TLS 1.3 allows less, 2^14 + 256, RFC 8446 §5.2). rustls refuses
/// a bigger record header; a connection's input buffer never holds more than one record.
pub const TLS_RECORD_MAX_BYTES: usize = 5 + 16_384 + 2_048;

/// Largest handshake message taken from a client, bytes: rustls's `MAX_HANDSHAKE_SIZE` (a
/// certificate chain spread over several records). The input buffer may hold this plus one
/// record while the handshake lasts.
pub const TLS_HANDSHAKE_MAX_BYTES: usize = 0xffff;

// Stream manager (issue 14, feature `stream-manager`): every bound of the stream server and
// its store. Sources: seed-D §2 (the guide's stream manager chapter) and the stock client
// (PyPI greengrasssdk 1.6.1, `stream_manager/`).

/// Default `STREAM_MANAGER_SERVER_PORT` (seed-D §2.5: "8088").
pub const DEFAULT_STREAM_MANAGER_PORT: u16 = 8088;

/// Default `sprig.streamStoreMaxBytes`: bytes all streams together may hold (records with
/// their 24-byte headers, File and Memory streams alike). sprig's own bound: the guide's
/// per-stream default of 256 MB would fill a 128 MB router, so the whole store is capped.
pub const DEFAULT_STREAM_STORE_MAX_BYTES: u64 = 32 * 1024 * 1024;
/// Smallest and largest `sprig.streamStoreMaxBytes` accepted, bytes (the smallest is the
/// client's smallest `maxSize`, 1024, times 64; the largest 16 GiB, an SD card's share).
pub const MIN_STREAM_STORE_MAX_BYTES: u64 = 64 * 1024;
pub const MAX_STREAM_STORE_MAX_BYTES: u64 = 16 * 1024 * 1024 * 1024;

/// Streams at once (sprig's bound: each File stream holds one open segment file).
pub const STREAM_MAX_STREAMS: usize = 64;

/// Largest payload one `append_message` may carry, bytes (sprig's bound; the client allows
/// frames up to 2^30, which a router cannot buffer). Bigger appends get RequestPayloadTooLarge.
pub const STREAM_MAX_MESSAGE_BYTES: usize = 512 * 1024;

/// Largest request frame read, bytes: one message of the largest size plus stream name,
/// request id and CBOR overhead. A bigger frame is answered RequestPayloadTooLarge and the
/// connection closed (its bytes are not buffered).
pub const STREAM_MAX_FRAME_BYTES: usize = STREAM_MAX_MESSAGE_BYTES + 4096;

/// Most payload bytes one ReadMessages response carries; at least one message is always sent
/// (a message is at most `STREAM_MAX_MESSAGE_BYTES`). Fewer than `minMessageCount` fitting
/// → ResponsePayloadTooLarge.
pub const STREAM_MAX_READ_RESPONSE_BYTES: usize = 1024 * 1024;

/// Longest long-poll (`readTimeoutMillis`) a read may park for, ms: the client's own
/// request_timeout default (60 s); longer values are shortened to this.
pub const STREAM_MAX_READ_TIMEOUT_MS: u64 = 60_000;

/// Reads one connection may have parked at once; more get InvalidRequest.
pub const STREAM_MAX_PARKED_READS: usize = 16;

/// Client connections at once (a Greengrass group has at most `MAX_GROUP_FUNCTIONS` Lambdas;
/// the guide asks for one client per function). More are closed at accept and counted.
pub const STREAM_MAX_CONNECTIONS: usize = 64;

/// Sparse read index: one (sequence number, offset) entry per this many segment bytes, so the
/// index costs 16 bytes per 16 KiB stored and a read scans at most this much before its start.
pub const STREAM_INDEX_STRIDE_BYTES: u64 = 16 * 1024;

/// How often expired segments (`timeToLiveMillis`) are looked for, seconds.
pub const STREAM_TTL_CHECK_SECS: u64 = 10;

/// HTTP export: largest response head read from the endpoint, bytes.
pub const STREAM_EXPORT_MAX_RESPONSE_HEAD_BYTES: usize = 8 * 1024;

/// HTTP export: one POST (connect, send, response) must finish within this, seconds.
pub const STREAM_EXPORT_TIMEOUT_SECS: u64 = 10;

/// HTTP export: retry back-off after a failed POST, first and longest, ms (doubles per failure;
/// retries go on for ever at the longest interval: the data waits in the stream).
pub const STREAM_EXPORT_BACKOFF_MIN_MS: u64 = 500;
pub const STREAM_EXPORT_BACKOFF_MAX_MS: u64 = 30_000;

/// HTTP export: default `batchSize` (the client's documented default 1 for HTTP; at most 500).
pub const STREAM_EXPORT_DEFAULT_BATCH: u32 = 1;

// deploy (issue 10: `sprig deploy`, hot apply, `sprig reset`)

/// Deploy: total bytes of one function's unpacked code (a zip's entries or a directory's
/// files), and the largest zip file read. The default; a Lambda deployment package is
/// at most 50 MB zipped / 250 MB unzipped on AWS, far more than a router's flash.
pub const DEPLOY_MAX_CODE_BYTES: u64 = 64 * 1024 * 1024;

/// Deploy: entries (files and directories) in one function's code. A Python package with its
/// dependencies has a few hundred to a few thousand files.
pub const DEPLOY_MAX_CODE_ENTRIES: usize = 10_000;

/// Deploy: longest relative path of one code entry, bytes (well under Linux's PATH_MAX 4096
/// once `WRITE_DIR/ggc/deployment/lambda/<Id>/` is in front of it).
pub const DEPLOY_MAX_CODE_PATH_BYTES: usize = 1024;

/// Deploy: longest function Id, in bytes; it names the code directory (the guide caps Ids and
/// Names at 128 characters, seed-C §16).
pub const DEPLOY_MAX_FUNCTION_ID_BYTES: usize = 128;

/// Deploy: `--lambda` options on one command line (one per function of a group).
pub const DEPLOY_MAX_LAMBDA_ARGS: usize = MAX_GROUP_FUNCTIONS;

/// Deploy: deployments kept in `ggc/var/state/deployments/history.json`, newest first
/// (`aws greengrass list-deployments` pages by 100; a router needs the recent ones).
pub const DEPLOY_HISTORY_MAX: usize = 50;

/// Deploy: longest failure reason kept per deployment, bytes (the first problems; the full
/// list is printed by `sprig deploy` itself).
pub const DEPLOY_REASON_MAX_BYTES: usize = 1024;

/// Deploy: how often the running daemon looks at group.json and the deployment journal for a
/// change nobody signalled, ms (the issue: applied within 5 s of `sprig deploy` returning).
pub const DEPLOY_POLL_MS: u64 = 2_000;

/// Deploy: how long `sprig start` waits for a running `sprig deploy` / `sprig reset` to let go
/// of the deployment lock before it goes on without recovering leftovers, ms.
pub const DEPLOY_LOCK_WAIT_MS: u64 = 10_000;

/// Jobs: bytes of the control connection's in-memory outbox (Jobs updates and start-next
/// requests waiting for the connection; each is well under 1 KiB).
pub const JOBS_OUTBOX_BYTES: u64 = 64 * 1024;

/// Jobs: messages from the Jobs service waiting for the jobs task (one job at a time: a few
/// replies and notifications at most). Over it: dropped, logged, counted.
pub const JOBS_INBOX_MESSAGES: usize = 16;

/// Jobs: how often the jobs task looks at the control connection and a running deployment, ms.
pub const JOBS_CHECK_MS: u64 = 500;

/// Jobs: download attempts per file before the job is FAILED (the issue: e.g. 5).
pub const JOBS_DOWNLOAD_ATTEMPTS: u32 = 5;

/// Jobs: first wait between download attempts, ms; doubled each time (0.5 + 1 + 2 + 4 s).
pub const JOBS_DOWNLOAD_BACKOFF_MS: u64 = 500;

/// Jobs: a download attempt fails when nothing arrives for this long, s. With the attempts
/// and backoff above a file is given up within 5 × 15 + 7.5 s, under the 2 minutes.
pub const JOBS_DOWNLOAD_IDLE_SECS: u64 = 15;

// Shadow service (issue 9): AWS IoT Device Shadow limits, and the bounds of sprig's store.

/// Largest desired + reported state of one shadow, bytes (metadata does not count): AWS IoT
/// "The device's shadow supports 8 KB of data only ... Only the data for desired and reported
/// state ... counts toward the limit" (AWS IoT developer guide, "Diagnosing problems with
/// shadows"). Over it: 413 "The payload exceeds the maximum size allowed".
pub const SHADOW_MAX_STATE_BYTES: usize = 8 * 1024;

/// Deepest nesting inside `desired` or `reported`, levels: AWS IoT's 400 "JSON contains too many
/// levels of nesting; maximum is 6" (AWS IoT developer guide, "Device Shadow error messages").
pub const SHADOW_MAX_DEPTH: usize = 6;

/// Longest `clientToken`, bytes: "A client token that is longer than 64 bytes will cause this
/// response" (400 "Invalid clientToken", AWS IoT developer guide, "Device Shadow error messages").
pub const SHADOW_MAX_CLIENT_TOKEN_BYTES: usize = 64;

/// Longest thing name, bytes (AWS IoT: thing names are 1-128 characters of `[a-zA-Z0-9:_-]`).
pub const SHADOW_MAX_THING_NAME_BYTES: usize = 128;

/// Largest stored shadow (state, per-leaf metadata, version), bytes. Metadata can be several
/// times the 8 KB state (one `{"timestamp":..}` per leaf); 60 KiB keeps `update/documents`
/// (previous + current) under the 128 KiB payload limit. Over it: 413.
pub const SHADOW_MAX_FILE_BYTES: usize = 60 * 1024;

/// All stored shadows together, bytes (files under ggc/var/state/shadows/). 1 MiB holds 200
/// devices' shadows of ~5 KB each, on routers whose overlay flash is a few MB. When an update
/// would pass it, the update is refused with 413 and a message saying the store is full.
pub const SHADOW_STORE_MAX_BYTES: usize = 1024 * 1024;

/// How often the shadow sync looks at the cloud link's state (reconcile on up, re-ask
/// unanswered gets after `system.shadowSyncTimeout`), ms. One cheap check per second.
pub const SHADOW_SYNC_TICK_MS: u64 = 1_000;
// ---- Local Discovery API (issue 11: src/discovery/) ----

/// Default `sprig.discoveryPort`: the Greengrass Discovery API's port (guide "Discovery API":
/// `https://greengrass-ats.iot.region.amazonaws.com:8443/greengrass/discover/thing/...`).
pub const DEFAULT_DISCOVERY_PORT: u16 = 8443;

/// Discovery: largest request head (request line + headers), bytes. The SDK's request is about
/// 100 bytes plus the thing name (at most 128) and the host; 8 KiB is the usual server default
/// (nginx `large_client_header_buffers`). A GET has no body, so this bounds the whole request.
pub const DISCOVERY_MAX_REQUEST_BYTES: usize = 8 * 1024;

/// Discovery: most header lines in one request (the SDK sends one, `Host`; curl three).
pub const DISCOVERY_MAX_HEADERS: usize = 32;

/// Discovery: simultaneous connections; more are closed at accept, logged and counted. A device
/// discovers once at start-up and then talks MQTT, so a few at a time is plenty.
pub const DISCOVERY_MAX_CONNECTIONS: usize = 16;

/// Discovery: time from the end of the TLS handshake to the first request byte, seconds.
pub const DISCOVERY_FIRST_BYTE_SECS: u64 = 10;

/// Discovery: time from accept to the whole request read and the reply written, seconds
/// (slowloris bound; the SDK's own timeout is 120 s, the guide's script sets 10).
pub const DISCOVERY_REQUEST_SECS: u64 = 30;

/// Discovery: entries in `sprig.connectivity`, and automatic (interface) entries in a reply.
pub const DISCOVERY_MAX_CONNECTIVITY: usize = 16;

/// Discovery: longest `metadata` string of a connectivity entry, bytes.
pub const DISCOVERY_MAX_METADATA_BYTES: usize = 256;

/// Discovery: longest `hostAddress`, bytes (a DNS name's limit, RFC 1035 §2.3.4).
pub const DISCOVERY_MAX_HOST_BYTES: usize = 253;

// ---- Lambda runner and IPC (issue 12) ----

/// IPC: headers in one request (the SDKs send fewer than 10; httparse needs a fixed array).
pub const IPC_MAX_HEADERS: usize = 32;

/// IPC: request line + headers, bytes (the SDKs' requests are well under 1 KiB; the client
/// context header is base64 of a small JSON object).
pub const IPC_MAX_HEAD_BYTES: usize = 16 * 1024;

/// IPC: request bodies, bytes: a payload is capped like a local message (128 KiB), plus room
/// for a handled error's JSON wrapper.
pub const IPC_MAX_BODY_BYTES: usize = MAX_PAYLOAD_BYTES + 1024;

/// IPC: open connections at once (each worker keeps one or two; invokers add one each).
pub const IPC_MAX_CONNECTIONS: usize = 256;

/// Invocations waiting for a worker, per function (Greengrass keeps a bounded queue per
/// function; full → dropped and counted, `Unhandled` to a RequestResponse invoker).
pub const FUNCTION_QUEUE_DEPTH: usize = 64;

/// Invocations in flight (queued, running, or finished and not yet fetched) over all functions.
pub const MAX_INVOCATIONS: usize = 1024;

/// A RequestResponse result nobody fetched is forgotten after this long, seconds.
pub const RESULT_KEEP_SECS: u64 = 60;

/// An idle on-demand worker is stopped after this long, seconds (Greengrass keeps them warm
/// for tens of seconds; issue 12: at least 30 s).
pub const ON_DEMAND_IDLE_SECS: u64 = 60;

/// A new on-demand worker must ask for work within this long, seconds, else it is killed (a
/// Python worker imports its handler first; on a Pi Zero that takes a few seconds). Pinned
/// workers have no such limit: their module code may run for ever (seed-B §2.4).
pub const WORKER_START_TIMEOUT_SECS: u64 = 60;

/// Restart backoff of a pinned function after a crash or timeout: from 1 s, doubling, at most
/// 10 s (issue 12 §3).
pub const PINNED_RESTART_MIN_MS: u64 = 1_000;
pub const PINNED_RESTART_MAX_MS: u64 = 10_000;

/// On shutdown, workers get this long after SIGTERM before SIGKILL.
pub const WORKER_STOP_GRACE_MS: u64 = 500;

/// Bytes of one worker output line written to the function's log; the rest of the line is cut.
pub const WORKER_LOG_LINE_BYTES: usize = MAX_LOG_LINE_BYTES;

/// A busy `ggDaemonPort` is tried again this often, seconds (functions cannot reach the core
/// meanwhile; the broker and the cloud link work on).
pub const IPC_REBIND_SECS: u64 = 10;

/// Payload bytes held by queued, running and unfetched invocations over all functions.
pub const MAX_INVOCATION_BYTES: usize = 8 * 1024 * 1024;
