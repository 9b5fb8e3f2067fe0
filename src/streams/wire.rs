//! The stream manager wire protocol, sans-IO: frames, the CBOR requests the stock client
//! (PyPI greengrasssdk 1.6.1, `stream_manager/`) sends and the responses it expects.
//!
//! Frame: `len: i32` big-endian (= payload + 1) | `op: u8` | CBOR map. Before the first frame
//! the client sends one byte, the connect version (1); the server answers the same byte.
//! Every map key is camelCase, enums are integers, absent optional fields are omitted.

use minicbor::{Decoder, Encoder};

use crate::limits;

/// The connect version byte both sides send first.
pub const CONNECT_VERSION: u8 = 1;
/// The protocol version sprig speaks (the 1.6.1 client's; it falls back to 1.0.0).
pub const PROTOCOL_VERSION: &str = "1.1.0";
/// Versions sprig accepts from a client.
pub const SUPPORTED_PROTOCOL_VERSIONS: &[&str] = &["1.1.0", "1.0.0"];

/// Operation codes (`Operation` in the client).
pub mod op {
    pub const CONNECT: u8 = 1;
    pub const CREATE: u8 = 2;
    pub const DELETE: u8 = 3;
    pub const APPEND: u8 = 4;
    pub const READ: u8 = 5;
    pub const CONNECT_RESPONSE: u8 = 6;
    pub const LIST: u8 = 11;
    pub const DESCRIBE: u8 = 13;
    pub const UPDATE: u8 = 15;
    pub const UNKNOWN_OPERATION_ERROR: u8 = 17;

    /// The response op of a request op (Create 2 → 7 ... Read 5 → 10, List 11 → 12, ...).
    pub fn response_of(request: u8) -> u8 {
        match request {
            2..=5 => request + 5,
            11 | 13 | 15 => request + 1,
            _ => UNKNOWN_OPERATION_ERROR,
        }
    }
}

/// `ResponseStatusCode` in the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Success = 0,
    UnknownFailure = 1,
    Unauthorized = 2,
    InvalidRequest = 3,
    RequestPayloadTooLarge = 4,
    ResourceNotFound = 5,
    ResponsePayloadTooLarge = 7,
    UnsupportedProtocolVersion = 10,
    NotEnoughMessages = 13,
    MessageStoreReadError = 14,
    OutOfMemory = 15,
    UpdateNotAllowed = 17,
    UnknownOperation = 18,
}

/// `StrategyOnFull`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    RejectNewData = 0,
    OverwriteOldestData = 1,
}

/// `Persistence`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    File = 0,
    Memory = 1,
}

/// `ExportFormat` of an HTTP export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    RawNotBatched = 0,
    JsonBatched = 1,
}

/// One `HTTPConfig` of a stream's export definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpExport {
    pub identifier: String,
    pub uri: String,
    pub batch_size: u32,
    pub batch_interval_ms: Option<u64>,
    pub start_sequence_number: u64,
    pub disabled: bool,
    pub format: ExportFormat,
    /// 1 (first) to 10; unset = after every set one.
    pub priority: u8,
}

/// A `MessageStreamDefinition` with the client's defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    pub name: String,
    pub max_size: u64,
    pub segment_size: u64,
    pub ttl_ms: Option<u64>,
    pub strategy: Strategy,
    pub persistence: Persistence,
    pub flush_on_write: bool,
    /// The `exportDefinition` map as received (CBOR), echoed by describe.
    pub export_raw: Option<Vec<u8>>,
    /// Its HTTP exports, which sprig runs.
    pub http: Vec<HttpExport>,
    /// Identifiers of exports sprig recognises but does not run (kind, identifier).
    pub unsupported: Vec<(&'static str, String)>,
}

/// `ReadMessagesOptions` with defaults (start 0, min 1, max 1, timeout 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOptions {
    pub start: u64,
    pub min: u64,
    pub max: u64,
    pub timeout_ms: u64,
}

/// A decoded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Connect {
        protocol_version: String,
        other_versions: Vec<String>,
        auth_token: Option<String>,
    },
    Create(Definition),
    Update(Definition),
    Delete(String),
    Append {
        name: String,
        payload: Vec<u8>,
    },
    Read {
        name: String,
        options: ReadOptions,
    },
    List,
    Describe(String),
}

/// A request that cannot be served: answered with `status` when its request id is known,
/// else the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub request_id: Option<String>,
    pub status: Status,
    pub message: String,
}

/// What [`parse_frame`] found at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// Not all of the frame is there yet.
    Partial,
    /// A whole frame: its op, its CBOR payload and the bytes it took.
    Whole {
        op: u8,
        payload: &'a [u8],
        used: usize,
    },
}

/// Why bytes are not a frame; the connection is closed after saying so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Length below 1 (no op byte) or negative.
    BadLength(i32),
    /// Length over [`limits::STREAM_MAX_FRAME_BYTES`].
    TooLarge(usize),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::BadLength(n) => write!(f, "frame length {n} is not a valid length"),
            FrameError::TooLarge(n) => write!(
                f,
                "frame of {n} bytes is over sprig's limit of {} bytes",
                limits::STREAM_MAX_FRAME_BYTES
            ),
        }
    }
}

/// Finds the frame at the start of `buf`. Never panics (the fuzz target calls it).
pub fn parse_frame(buf: &[u8]) -> Result<Frame<'_>, FrameError> {
    if buf.len() < 4 {
        return Ok(Frame::Partial);
    }
    let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if len < 1 {
        return Err(FrameError::BadLength(len));
    }
    let len = len as usize;
    if len > limits::STREAM_MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge(len));
    }
    match buf.get(4..4 + len) {
        None => Ok(Frame::Partial),
        Some(body) => Ok(Frame::Whole {
            op: body[0],
            payload: &body[1..],
            used: 4 + len,
        }),
    }
}

type DResult<T> = Result<T, minicbor::decode::Error>;

fn refuse(id: &Option<String>, status: Status, message: impl Into<String>) -> Refusal {
    Refusal {
        request_id: id.clone(),
        status,
        message: message.into(),
    }
}

/// Decodes the request in a frame with op `op`. Unknown ops, undecodable CBOR, missing or
/// out-of-range fields are refusals (with the request id when it could be read).
pub fn decode_request(op: u8, payload: &[u8]) -> Result<(String, Request), Refusal> {
    let id = request_id(payload);
    let bad = |m: String| refuse(&id, Status::InvalidRequest, m);
    let fields = Fields::read(payload).map_err(|e| bad(format!("malformed CBOR: {e}")))?;
    let Some(rid) = id.clone() else {
        return Err(bad("the request has no requestId".into()));
    };
    let req = match op {
        op::CONNECT => Request::Connect {
            protocol_version: fields
                .str("protocolVersion")
                .map_err(bad)?
                .unwrap_or_default(),
            other_versions: fields
                .str_list("otherSupportedProtocolVersions")
                .map_err(bad)?,
            auth_token: fields.str("authToken").map_err(bad)?,
        },
        op::CREATE | op::UPDATE => {
            let raw = fields
                .raw("definition")
                .ok_or_else(|| bad("definition is required".into()))?;
            let def = decode_definition(raw).map_err(bad)?;
            if op == op::CREATE {
                Request::Create(def)
            } else {
                Request::Update(def)
            }
        }
        op::DELETE => Request::Delete(fields.name("name").map_err(bad)?),
        op::DESCRIBE => Request::Describe(fields.name("name").map_err(bad)?),
        op::LIST => Request::List,
        op::APPEND => {
            let name = fields.name("name").map_err(bad)?;
            let payload = fields.bytes("payload").map_err(bad)?.unwrap_or_default();
            if payload.is_empty() {
                return Err(bad("payload must be at least 1 byte".into()));
            }
            if payload.len() > limits::STREAM_MAX_MESSAGE_BYTES {
                return Err(refuse(
                    &id,
                    Status::RequestPayloadTooLarge,
                    format!(
                        "a message of {} bytes is over sprig's limit of {} bytes",
                        payload.len(),
                        limits::STREAM_MAX_MESSAGE_BYTES
                    ),
                ));
            }
            Request::Append { name, payload }
        }
        op::READ => {
            let name = fields.name("streamName").map_err(bad)?;
            let options = match fields.raw("readMessagesOptions") {
                None => ReadOptions {
                    start: 0,
                    min: 1,
                    max: 1,
                    timeout_ms: 0,
                },
                Some(raw) => decode_read_options(raw).map_err(bad)?,
            };
            Request::Read { name, options }
        }
        other => {
            return Err(refuse(
                &id,
                Status::UnknownOperation,
                format!("operation {other} is not one sprig's stream manager knows"),
            ))
        }
    };
    Ok((rid, req))
}

/// The `requestId` of a payload, if it is a map holding one (used to answer bad requests).
fn request_id(payload: &[u8]) -> Option<String> {
    let f = Fields::read(payload).ok()?;
    f.str("requestId").ok().flatten()
}

/// A CBOR map's top-level entries as (key, raw value bytes): keys other than text are skipped.
struct Fields<'a> {
    entries: Vec<(&'a str, &'a [u8])>,
}

impl<'a> Fields<'a> {
    fn read(buf: &'a [u8]) -> DResult<Fields<'a>> {
        let mut d = Decoder::new(buf);
        let mut entries = Vec::new();
        let n = d.map()?;
        let mut i = 0u64;
        loop {
            match n {
                Some(n) if i >= n => break,
                None if d.datatype()? == minicbor::data::Type::Break => break,
                _ => {}
            }
            let key = match d.datatype()? {
                minicbor::data::Type::String => Some(d.str()?),
                _ => {
                    d.skip()?;
                    None
                }
            };
            let start = d.position();
            d.skip()?;
            if let Some(k) = key {
                entries.push((k, &buf[start..d.position()]));
            }
            i += 1;
        }
        Ok(Fields { entries })
    }

    fn raw(&self, key: &str) -> Option<&'a [u8]> {
        self.entries.iter().find(|(k, _)| *k == key).map(|e| e.1)
    }

    fn with<T>(
        &self,
        key: &str,
        f: impl FnOnce(&mut Decoder<'a>) -> DResult<T>,
    ) -> Result<Option<T>, String> {
        match self.raw(key) {
            None => Ok(None),
            Some(raw) => {
                let mut d = Decoder::new(raw);
                if d.datatype().ok() == Some(minicbor::data::Type::Null) {
                    return Ok(None);
                }
                f(&mut d).map(Some).map_err(|e| format!("{key}: {e}"))
            }
        }
    }

    fn str(&self, key: &str) -> Result<Option<String>, String> {
        self.with(key, |d| d.str().map(str::to_owned))
    }

    fn bytes(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.with(key, |d| d.bytes().map(<[u8]>::to_vec))
    }

    fn u64(&self, key: &str) -> Result<Option<u64>, String> {
        self.with(key, |d| d.u64())
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, String> {
        self.with(key, |d| d.bool())
    }

    fn str_list(&self, key: &str) -> Result<Vec<String>, String> {
        Ok(self
            .with(key, |d| {
                let n = d.array()?.unwrap_or(0).min(16);
                (0..n).map(|_| d.str().map(str::to_owned)).collect()
            })?
            .unwrap_or_default())
    }

    /// A required stream or identifier name, checked like the client checks it.
    fn name(&self, key: &str) -> Result<String, String> {
        let n = self.str(key)?.ok_or_else(|| format!("{key} is required"))?;
        check_name(key, &n)?;
        Ok(n)
    }

    fn int_in(&self, key: &str, lo: u64, hi: u64) -> Result<Option<u64>, String> {
        match self.u64(key)? {
            Some(v) if !(lo..=hi).contains(&v) => {
                Err(format!("{key} is {v}; it must be between {lo} and {hi}"))
            }
            v => Ok(v),
        }
    }

    fn enum_in(&self, key: &str, max: u64) -> Result<Option<u64>, String> {
        self.int_in(key, 0, max)
    }
}

/// Names as the client checks them: 1..255 characters of letters, digits, `_`, space, `,`,
/// `.`, `-` (`^[\w ,.\-_]*$`).
pub fn check_name(key: &str, n: &str) -> Result<(), String> {
    let chars = n.chars().count();
    if chars == 0 || chars > 255 {
        return Err(format!("{key} must be 1 to 255 characters long"));
    }
    if let Some(c) = n
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '_' | ' ' | ',' | '.' | '-')))
    {
        return Err(format!(
            "{key} {n:?} holds {c:?}; names may hold letters, digits, '_', ' ', ',', '.' and '-'"
        ));
    }
    Ok(())
}

const I63: u64 = i64::MAX as u64;

/// Decodes a `MessageStreamDefinition` map, with the client's defaults and ranges.
pub fn decode_definition(raw: &[u8]) -> Result<Definition, String> {
    let f = Fields::read(raw).map_err(|e| format!("definition: {e}"))?;
    let strategy = match f.enum_in("strategyOnFull", 1)? {
        None => return Err("definition.strategyOnFull is required".into()),
        Some(0) => Strategy::RejectNewData,
        Some(_) => Strategy::OverwriteOldestData,
    };
    let persistence = match f.enum_in("persistence", 1)? {
        Some(1) => Persistence::Memory,
        _ => Persistence::File,
    };
    let export_raw = f
        .raw("exportDefinition")
        .filter(|e| Decoder::new(e).datatype().ok() != Some(minicbor::data::Type::Null));
    let (http, unsupported) = match export_raw {
        Some(e) => decode_exports(e)?,
        None => (Vec::new(), Vec::new()),
    };
    Ok(Definition {
        name: f.name("name")?,
        max_size: f.int_in("maxSize", 1024, I63)?.unwrap_or(256 * 1024 * 1024),
        segment_size: f
            .int_in("streamSegmentSize", 1024, i32::MAX as u64)?
            .unwrap_or(16 * 1024 * 1024),
        ttl_ms: f.int_in("timeToLiveMillis", 60_000, 9_223_372_036_854)?,
        strategy,
        persistence,
        flush_on_write: f.bool("flushOnWrite")?.unwrap_or(false),
        export_raw: export_raw.map(<[u8]>::to_vec),
        http,
        unsupported,
    })
}

type Exports = (Vec<HttpExport>, Vec<(&'static str, String)>);

fn decode_exports(raw: &[u8]) -> Result<Exports, String> {
    let f = Fields::read(raw).map_err(|e| format!("exportDefinition: {e}"))?;
    let mut http = Vec::new();
    let mut unsupported = Vec::new();
    for (kind, key) in [
        ("http", "http"),
        ("IoT Analytics", "iotAnalytics"),
        ("Kinesis", "kinesis"),
        ("IoT SiteWise", "IotSitewise"),
        ("S3", "s3TaskExecutor"),
    ] {
        let Some(list) = f.raw(key) else { continue };
        let mut d = Decoder::new(list);
        if d.datatype().ok() == Some(minicbor::data::Type::Null) {
            continue;
        }
        let n = d
            .array()
            .map_err(|e| format!("exportDefinition.{key}: {e}"))?;
        let n =
            n.ok_or_else(|| format!("exportDefinition.{key}: indefinite lists are not accepted"))?;
        if n > 16 {
            return Err(format!(
                "exportDefinition.{key}: at most 16 exports per kind"
            ));
        }
        for _ in 0..n {
            let start = d.position();
            d.skip()
                .map_err(|e| format!("exportDefinition.{key}: {e}"))?;
            let c = Fields::read(&list[start..d.position()])
                .map_err(|e| format!("exportDefinition.{key}: {e}"))?;
            let identifier = c.name("identifier")?;
            if kind != "http" {
                unsupported.push((kind, identifier));
                continue;
            }
            let uri = c
                .str("uri")?
                .ok_or("exportDefinition.http[].uri is required")?;
            super::export::Uri::parse(&uri)
                .map_err(|e| format!("exportDefinition.http {identifier}: {e}"))?;
            http.push(HttpExport {
                identifier,
                uri,
                batch_size: c
                    .int_in("batchSize", 1, 500)?
                    .map_or(limits::STREAM_EXPORT_DEFAULT_BATCH, |b| b as u32),
                batch_interval_ms: c.int_in("batchIntervalMillis", 60_000, 9_223_372_036_854)?,
                start_sequence_number: c.int_in("startSequenceNumber", 0, I63)?.unwrap_or(0),
                priority: c.int_in("priority", 1, 10)?.map_or(11, |p| p as u8),
                disabled: c.bool("disabled")?.unwrap_or(false),
                format: match c.enum_in("exportFormat", 1)? {
                    Some(1) => ExportFormat::JsonBatched,
                    _ => ExportFormat::RawNotBatched,
                },
            });
        }
    }
    let mut ids: Vec<&str> = http
        .iter()
        .map(|h| h.identifier.as_str())
        .chain(unsupported.iter().map(|u| u.1.as_str()))
        .collect();
    ids.sort_unstable();
    if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("export identifier {:?} is used twice", w[0]));
    }
    Ok((http, unsupported))
}

fn decode_read_options(raw: &[u8]) -> Result<ReadOptions, String> {
    let f = Fields::read(raw).map_err(|e| format!("readMessagesOptions: {e}"))?;
    let o = ReadOptions {
        start: f.int_in("desiredStartSequenceNumber", 0, I63)?.unwrap_or(0),
        min: f
            .int_in("minMessageCount", 1, i32::MAX as u64)?
            .unwrap_or(1),
        max: f
            .int_in("maxMessageCount", 1, i32::MAX as u64)?
            .unwrap_or(1),
        timeout_ms: f
            .int_in("readTimeoutMillis", 0, 9_223_372_036_854)?
            .unwrap_or(0),
    };
    if o.min > o.max {
        return Err("minMessageCount must be less than or equal to maxMessageCount".into());
    }
    Ok(o)
}

/// Builds one response frame: header and CBOR map in one buffer (the client reads the header
/// with single non-looping reads, so it must arrive in one write).
pub struct Response {
    enc: Encoder<Vec<u8>>,
}

impl Response {
    /// Starts a frame with op `op` and a map of `fields` entries after requestId, status and
    /// (when `error` is Some) errorMessage.
    pub fn new(
        op: u8,
        request_id: &str,
        status: Status,
        error: Option<&str>,
        fields: u64,
    ) -> Response {
        let mut enc = Encoder::new(vec![0, 0, 0, 0, op]);
        let n = 2 + u64::from(error.is_some()) + fields;
        let _ = enc
            .map(n)
            .and_then(|e| e.str("requestId"))
            .and_then(|e| e.str(request_id));
        let _ = enc.str("status").and_then(|e| e.u8(status as u8));
        if let Some(m) = error {
            let _ = enc.str("errorMessage").and_then(|e| e.str(m));
        }
        Response { enc }
    }

    /// The encoder, to write the extra fields.
    pub fn enc(&mut self) -> &mut Encoder<Vec<u8>> {
        &mut self.enc
    }

    /// The finished frame bytes.
    pub fn finish(self) -> Vec<u8> {
        let mut v = self.enc.into_writer();
        let len = (v.len() - 4) as u32;
        v[..4].copy_from_slice(&len.to_be_bytes());
        v
    }
}

/// An error response for a refused request (op: the request's response op).
pub fn error_frame(request_op: u8, request_id: &str, status: Status, message: &str) -> Vec<u8> {
    Response::new(
        op::response_of(request_op),
        request_id,
        status,
        Some(message),
        0,
    )
    .finish()
}

/// Writes a definition map (describe, and the store's metadata file).
pub fn encode_definition(e: &mut Encoder<Vec<u8>>, d: &Definition) {
    let n = 6 + u64::from(d.ttl_ms.is_some()) + u64::from(d.export_raw.is_some());
    let _ = e.map(n);
    let _ = e.str("name").and_then(|e| e.str(&d.name));
    let _ = e.str("maxSize").and_then(|e| e.u64(d.max_size));
    let _ = e
        .str("streamSegmentSize")
        .and_then(|e| e.u64(d.segment_size));
    if let Some(t) = d.ttl_ms {
        let _ = e.str("timeToLiveMillis").and_then(|e| e.u64(t));
    }
    let _ = e.str("strategyOnFull").and_then(|e| e.u8(d.strategy as u8));
    let _ = e.str("persistence").and_then(|e| e.u8(d.persistence as u8));
    let _ = e.str("flushOnWrite").and_then(|e| e.bool(d.flush_on_write));
    if let Some(raw) = &d.export_raw {
        let _ = e.str("exportDefinition");
        e.writer_mut().extend_from_slice(raw);
    }
}

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
