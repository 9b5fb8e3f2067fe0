//! The local shadow service (`GGShadowService`), sans-IO: a shadow request (thing, operation,
//! payload, time) becomes a [`Plan`] — the replies to publish, the document to store, whether
//! the cloud copy must hear about it — that the shell ([`service`]) carries out: it writes the
//! file first and applies the plan only once the file is safely replaced.
//!
//! The rules are AWS IoT Device Shadow's (classic, unnamed shadows, as Greengrass v1 serves
//! them; seed-B §5):
//! * `state.desired` / `state.reported` merge recursively; `null` deletes a key and its
//!   metadata; only `state`, `clientToken` and `version` of a request are read.
//! * `version` starts at 1 and grows by one per accepted update; a request `version` that is
//!   not the current one is refused with 409. After a delete the next shadow continues above
//!   the deleted version (kept as a tombstone), so clients that drop deltas whose version does
//!   not grow (the Python device SDK) keep working.
//! * Replies on `<op>/accepted` or `<op>/rejected`; an accepted update also publishes
//!   `update/documents` (previous and current with metadata) and, when desired differs from
//!   reported, `update/delta` (the whole difference). `clientToken` is echoed everywhere.
//! * Errors are `{code, message, timestamp, clientToken}` with AWS's documented texts.
//!
//! Bounds: the request payload is bounded by the broker ([`limits::MAX_PAYLOAD_BYTES`]),
//! parsed at most [`limits::MAX_JSON_DEPTH`] deep; desired + reported at most
//! [`limits::SHADOW_MAX_STATE_BYTES`]; a stored shadow at most
//! [`limits::SHADOW_MAX_FILE_BYTES`]; all stored shadows at most
//! [`limits::SHADOW_STORE_MAX_BYTES`] (then updates are refused with 413 and a message saying
//! so). Only the group's things (its devices and the core) have shadows: at most
//! [`limits::MAX_GROUP_DEVICES`] + 1 entries.

use std::collections::HashMap;

use crate::json::{self, Value};
use crate::limits;

pub mod doc;
pub mod service;
pub mod store;
pub mod sync;

pub use service::ShadowService;

/// A shadow operation, the last segment of the request topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShadowOp {
    Update,
    Get,
    Delete,
}

impl ShadowOp {
    pub fn as_str(self) -> &'static str {
        match self {
            ShadowOp::Update => "update",
            ShadowOp::Get => "get",
            ShadowOp::Delete => "delete",
        }
    }
}

/// `$aws/things/<thing>/shadow/<update|get|delete>` → (thing, op); `None` for anything else
/// (response topics, named shadows, other topics).
pub fn parse_request_topic(topic: &str) -> Option<(&str, ShadowOp)> {
    let rest = topic.strip_prefix("$aws/things/")?;
    let (thing, op) = rest.split_once("/shadow/")?;
    if thing.is_empty() || thing.contains('/') {
        return None;
    }
    let op = match op {
        "update" => ShadowOp::Update,
        "get" => ShadowOp::Get,
        "delete" => ShadowOp::Delete,
        _ => return None,
    };
    Some((thing, op))
}

/// `$aws/things/<thing>/shadow/<suffix>`.
pub fn shadow_topic(thing: &str, suffix: &str) -> String {
    format!("$aws/things/{thing}/shadow/{suffix}")
}

/// A thing name AWS IoT accepts (`[a-zA-Z0-9:_-]{1,128}`); also what makes it a safe file name.
pub fn valid_thing_name(name: &str) -> bool {
    (1..=limits::SHADOW_MAX_THING_NAME_BYTES).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-'))
}

/// A refused request: AWS's HTTP-style code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: u16,
    pub message: String,
}

fn reject(code: u16, message: impl Into<String>) -> Rejection {
    Rejection {
        code,
        message: message.into(),
    }
}

/// One stored shadow: its version, and its document unless deleted (a tombstone keeps the
/// version so a new shadow continues above it).
#[derive(Debug, Clone, PartialEq)]
pub struct Shadow {
    pub version: u64,
    pub deleted: bool,
    /// Last change, epoch seconds.
    pub timestamp: u64,
    pub desired: Option<Value>,
    pub reported: Option<Value>,
    pub meta_desired: Option<Value>,
    pub meta_reported: Option<Value>,
    /// Cloud sync bookkeeping ([`sync`]); untouched for things that do not sync.
    pub sync: sync::SyncMark,
}

impl Shadow {
    fn empty(version: u64) -> Shadow {
        Shadow {
            version,
            deleted: true,
            timestamp: 0,
            desired: None,
            reported: None,
            meta_desired: None,
            meta_reported: None,
            sync: sync::SyncMark::default(),
        }
    }

    fn pair(a: &Option<Value>, b: &Option<Value>) -> Value {
        let mut m = Vec::new();
        if let Some(a) = a {
            m.push(("desired".to_string(), a.clone()));
        }
        if let Some(b) = b {
            m.push(("reported".to_string(), b.clone()));
        }
        Value::Object(m)
    }

    /// `{"desired":..,"reported":..}`.
    pub fn state(&self) -> Value {
        Shadow::pair(&self.desired, &self.reported)
    }

    pub fn metadata(&self) -> Value {
        Shadow::pair(&self.meta_desired, &self.meta_reported)
    }

    /// Bytes of desired + reported, what AWS's 8 KB limit counts (metadata does not).
    pub fn state_bytes(&self) -> usize {
        self.desired
            .as_ref()
            .map_or(0, |d| json::to_string(d).len())
            + self
                .reported
                .as_ref()
                .map_or(0, |r| json::to_string(r).len())
    }

    pub fn delta(&self) -> Option<Value> {
        doc::delta(self.desired.as_ref()?, self.reported.as_ref())
    }

    /// `{"state":..,"metadata":..,"version":..}`: one side of `update/documents`.
    fn snapshot(&self) -> Value {
        Value::Object(vec![
            ("state".into(), self.state()),
            ("metadata".into(), self.metadata()),
            ("version".into(), doc::int(self.version)),
        ])
    }
}

/// A message the service publishes: full topic and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub topic: String,
    pub body: String,
}

/// What one request leads to. The shell stores `store` (if any) first, then publishes
/// `replies` and calls [`Shadows::apply`].
#[derive(Debug)]
pub struct Plan {
    pub thing: String,
    pub op: ShadowOp,
    /// `<op>/accepted` or `<op>/rejected`, and its body: the direct answer.
    pub answer: (String, String),
    /// The refusal, when refused (for logs and counters).
    pub rejection: Option<Rejection>,
    /// `update/delta` and `update/documents`, in that order, when an update was accepted.
    pub side: Vec<Reply>,
    /// The shadow to store and keep, when the request changed it.
    pub new: Option<Shadow>,
    /// What the cloud copy must hear (a local change to a synced shadow).
    pub sync_out: Option<SyncOut>,
}

/// Who made a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A device or function through the core.
    Local,
    /// The cloud shadow (sync): applied locally, never sent back up.
    Cloud,
}

/// A local change the cloud shadow must hear about.
#[derive(Debug, Clone, PartialEq)]
pub enum SyncOut {
    /// The accepted request's `state` section (desired/reported patches, nulls included).
    Update(Value),
    Delete,
}

impl Plan {
    /// The answer as a published message.
    pub fn answer_reply(&self) -> Reply {
        Reply {
            topic: shadow_topic(&self.thing, &self.answer.0),
            body: self.answer.1.clone(),
        }
    }
}

/// What a request body said, once checked.
struct Request {
    token: Option<String>,
    version: Option<u64>,
    /// `state`'s members (update only).
    state: Vec<(String, Value)>,
}

/// Reads and checks a request body (every 400 of AWS's list). An empty body is an empty
/// request (get and delete need none).
fn read_request(payload: &[u8], op: ShadowOp) -> Result<Request, (Rejection, Option<String>)> {
    let bad = |m: &str, tok: &Option<String>| Err((reject(400, m), tok.clone()));
    let mut req = Request {
        token: None,
        version: None,
        state: Vec::new(),
    };
    if payload.iter().all(u8::is_ascii_whitespace) && op != ShadowOp::Update {
        return Ok(req);
    }
    if std::str::from_utf8(payload).is_err() {
        return Err((
            reject(
                415,
                "Unsupported documented encoding; supported encoding is UTF-8",
            ),
            None,
        ));
    }
    let v = match json::parse(payload, limits::MAX_PAYLOAD_BYTES, limits::MAX_JSON_DEPTH) {
        Ok(v) => v,
        Err(e) if matches!(e.kind, json::JsonErrorKind::TooDeep(_)) => {
            return bad(NESTING, &None);
        }
        Err(_) => return bad("Invalid JSON", &None),
    };
    if v.as_object().is_none() {
        return bad("Invalid JSON", &None);
    }
    match v.get("clientToken") {
        None => {}
        Some(Value::String(t)) if t.len() <= limits::SHADOW_MAX_CLIENT_TOKEN_BYTES => {
            req.token = Some(t.clone())
        }
        Some(_) => return bad("Invalid clientToken", &None),
    }
    match v.get("version") {
        None => {}
        Some(x) => match x.as_i64().and_then(|i| u64::try_from(i).ok()) {
            Some(n) if matches!(x, Value::Int(_)) => req.version = Some(n),
            _ => return bad("Invalid version", &req.token),
        },
    }
    if op != ShadowOp::Update {
        return Ok(req);
    }
    let state = match v.get("state") {
        None => return bad("Missing required node: state", &req.token),
        Some(Value::Object(s)) => s,
        Some(_) => return bad("State node must be an object", &req.token),
    };
    for (k, x) in state {
        let (msg, ok) = match k.as_str() {
            "desired" => ("Desired node must be an object", true),
            "reported" => ("Reported node must be an object", true),
            _ => ("State contains an invalid node", false),
        };
        if !ok {
            return bad(msg, &req.token);
        }
        match x {
            Value::Null => {}
            Value::Object(_) if doc::depth(x) > limits::SHADOW_MAX_DEPTH => {
                return bad(NESTING, &req.token);
            }
            Value::Object(_) => {}
            _ => return bad(msg, &req.token),
        }
    }
    req.state = state.to_vec();
    Ok(req)
}

const NESTING: &str = "JSON contains too many levels of nesting; maximum is 6";

/// What [`Shadows::set_things`] changed, each list sorted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Retarget {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Things that sync now and did not (new ones with SyncShadow included).
    pub sync_started: Vec<String>,
    /// Things that synced and no longer do (removed ones included).
    pub sync_stopped: Vec<String>,
}

/// Every shadow of the group, in memory (the store on disk mirrors it).
#[derive(Debug, Default)]
pub struct Shadows {
    /// Things that may have a shadow: the group's devices and the core.
    things: HashMap<String, bool>,
    map: HashMap<String, Shadow>,
    /// Stored bytes per thing (the encoded file), and their sum.
    bytes: HashMap<String, usize>,
    total_bytes: usize,
    store_limit: usize,
}

impl Shadows {
    /// `things`: (thing name, SyncShadow) for the core and every device.
    pub fn new(things: &[(String, bool)], store_limit: usize) -> Shadows {
        Shadows {
            things: things.iter().cloned().collect(),
            store_limit,
            ..Shadows::default()
        }
    }

    /// Whether `thing` is one of the group's things.
    pub fn serves(&self, thing: &str) -> bool {
        self.things.contains_key(thing)
    }

    /// Whether `thing`'s shadow is kept in step with the cloud (SyncShadow).
    pub fn syncs(&self, thing: &str) -> bool {
        self.things.get(thing).copied().unwrap_or(false)
    }

    /// The things whose shadows sync, sorted.
    pub fn synced_things(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .things
            .iter()
            .filter(|(_, s)| **s)
            .map(|(t, _)| t.clone())
            .collect();
        v.sort();
        v
    }

    pub fn get(&self, thing: &str) -> Option<&Shadow> {
        self.map.get(thing)
    }

    /// (live shadows, stored bytes).
    pub fn usage(&self) -> (usize, usize) {
        (
            self.map.values().filter(|s| !s.deleted).count(),
            self.total_bytes,
        )
    }

    /// Takes a new set of things (a deployment applied in the running core): things no longer
    /// in it lose their shadow in memory (no longer served, no longer counted against the
    /// store limit); SyncShadow flags follow the new set. Says what changed.
    pub fn set_things(&mut self, things: &[(String, bool)]) -> Retarget {
        let new: HashMap<String, bool> = things.iter().cloned().collect();
        let mut r = Retarget::default();
        for (t, &was) in &self.things {
            let now = new.get(t).copied();
            if now.is_none() {
                r.removed.push(t.clone());
            }
            if was && now != Some(true) {
                r.sync_stopped.push(t.clone());
            }
        }
        for (t, &now) in &new {
            let was = self.things.get(t).copied();
            if was.is_none() {
                r.added.push(t.clone());
            }
            if now && was != Some(true) {
                r.sync_started.push(t.clone());
            }
        }
        for t in &r.removed {
            self.map.remove(t);
            self.account(t, 0);
            self.bytes.remove(t);
        }
        self.things = new;
        for v in [
            &mut r.added,
            &mut r.removed,
            &mut r.sync_started,
            &mut r.sync_stopped,
        ] {
            v.sort();
        }
        r
    }

    /// Forgets every shadow held in memory (the store was emptied: `sprig reset`, or it is
    /// about to be read again); the set of things stays.
    pub fn clear(&mut self) {
        self.map.clear();
        self.bytes.clear();
        self.total_bytes = 0;
    }

    /// Takes a shadow read from the store (start-up). Things not in the group are ignored.
    pub fn load(&mut self, thing: &str, shadow: Shadow, stored_bytes: usize) -> bool {
        if !self.serves(thing) {
            return false;
        }
        self.account(thing, stored_bytes);
        self.map.insert(thing.to_string(), shadow);
        true
    }

    fn account(&mut self, thing: &str, n: usize) {
        let old = self.bytes.insert(thing.to_string(), n).unwrap_or(0);
        self.total_bytes = self.total_bytes - old + n;
    }

    /// Works out what a request from a local client does, without changing anything.
    pub fn plan(&self, thing: &str, op: ShadowOp, payload: &[u8], now: u64) -> Plan {
        self.plan_from(Origin::Local, thing, op, payload, now)
    }

    /// [`Shadows::plan`] for a request from `origin`: a local change to a synced shadow is
    /// marked dirty and handed to the cloud sync (`Plan::sync_out`); a change from the cloud
    /// is not (no echo).
    pub fn plan_from(
        &self,
        origin: Origin,
        thing: &str,
        op: ShadowOp,
        payload: &[u8],
        now: u64,
    ) -> Plan {
        let mut plan = Plan {
            thing: thing.to_string(),
            op,
            answer: (String::new(), String::new()),
            rejection: None,
            side: Vec::new(),
            new: None,
            sync_out: None,
        };
        match self.try_plan(thing, op, payload, now, &mut plan) {
            Ok(body) => plan.answer = (format!("{}/accepted", op.as_str()), body),
            Err((r, token)) => {
                plan.answer = (
                    format!("{}/rejected", op.as_str()),
                    error_body(&r, token.as_deref(), now),
                );
                plan.rejection = Some(r);
                plan.side.clear();
                plan.new = None;
            }
        }
        if origin == Origin::Local && self.syncs(thing) {
            let before = self.map.get(thing).filter(|s| !s.deleted);
            if let Some(new) = &mut plan.new {
                let changed = match before {
                    Some(b) => new.deleted || b.state() != new.state(),
                    None => !new.deleted,
                };
                if changed {
                    new.sync.dirty = true;
                    plan.sync_out = Some(if new.deleted {
                        SyncOut::Delete
                    } else {
                        let req = read_request(payload, op)
                            .map(|r| r.state)
                            .unwrap_or_default();
                        SyncOut::Update(Value::Object(req))
                    });
                }
            }
        }
        plan
    }

    fn try_plan(
        &self,
        thing: &str,
        op: ShadowOp,
        payload: &[u8],
        now: u64,
        plan: &mut Plan,
    ) -> Result<String, (Rejection, Option<String>)> {
        if !self.serves(thing) || !valid_thing_name(thing) {
            return Err((reject(404, "Thing not found"), None));
        }
        let req = read_request(payload, op)?;
        let tok = &req.token;
        let cur = self.map.get(thing);
        let live = cur.filter(|s| !s.deleted);
        let missing = || {
            (
                reject(404, format!("No shadow exists with name: '{thing}'")),
                tok.clone(),
            )
        };
        let cur_version = cur.map_or(0, |s| s.version);
        if let Some(v) = req.version {
            if v != cur_version {
                return Err((reject(409, "Version conflict"), tok.clone()));
            }
        }
        let mut out = Vec::new();
        match op {
            ShadowOp::Get => {
                let s = live.ok_or_else(missing)?;
                let mut state = s.state();
                if let (Some(d), Value::Object(m)) = (s.delta(), &mut state) {
                    m.push(("delta".into(), d));
                }
                out.push(("state", state));
                out.push(("metadata", s.metadata()));
                out.push(("version", doc::int(s.version)));
                out.push(("timestamp", doc::int(now)));
            }
            ShadowOp::Delete => {
                let s = live.ok_or_else(missing)?;
                let mut gone = Shadow::empty(s.version);
                gone.timestamp = now;
                gone.sync = s.sync.clone();
                plan.new = Some(gone);
                out.push(("version", doc::int(s.version)));
                out.push(("timestamp", doc::int(now)));
            }
            ShadowOp::Update => {
                let mut next = match live {
                    Some(s) => s.clone(),
                    None => Shadow {
                        deleted: false,
                        sync: cur.map(|s| s.sync.clone()).unwrap_or_default(),
                        ..Shadow::empty(cur_version)
                    },
                };
                let mut echo_meta = Vec::new();
                for (k, x) in &req.state {
                    let (val, meta) = if k == "desired" {
                        (&mut next.desired, &mut next.meta_desired)
                    } else {
                        (&mut next.reported, &mut next.meta_reported)
                    };
                    echo_meta.push((k.clone(), doc::meta_of(x, now)));
                    match x.as_object() {
                        None => {
                            *val = None;
                            *meta = None;
                        }
                        Some(patch) => {
                            let v = val.get_or_insert_with(|| Value::Object(Vec::new()));
                            let m = meta.get_or_insert_with(|| Value::Object(Vec::new()));
                            doc::merge(v, m, patch, now);
                        }
                    }
                }
                if next.state_bytes() > limits::SHADOW_MAX_STATE_BYTES {
                    return Err((
                        reject(413, "The payload exceeds the maximum size allowed"),
                        tok.clone(),
                    ));
                }
                next.version = cur_version + 1;
                next.timestamp = now;
                let stored = store::encode(&next).len();
                if stored > limits::SHADOW_MAX_FILE_BYTES {
                    return Err((
                        reject(
                            413,
                            format!(
                                "The payload exceeds the maximum size allowed (the shadow with its metadata would be {stored} bytes; the core stores at most {})",
                                limits::SHADOW_MAX_FILE_BYTES
                            ),
                        ),
                        tok.clone(),
                    ));
                }
                let total = self.total_bytes - self.bytes.get(thing).copied().unwrap_or(0) + stored;
                if total > self.store_limit {
                    return Err((
                        reject(
                            413,
                            format!(
                                "The core's shadow store is full: {total} bytes needed, {} allowed; delete unused shadows or make documents smaller",
                                self.store_limit
                            ),
                        ),
                        tok.clone(),
                    ));
                }
                out.push(("state", Value::Object(req.state.clone())));
                out.push(("metadata", Value::Object(echo_meta)));
                out.push(("version", doc::int(next.version)));
                out.push(("timestamp", doc::int(now)));
                plan.side = update_side_messages(thing, live, &next, tok.as_deref(), now);
                plan.new = Some(next);
            }
        }
        if let Some(t) = tok {
            out.push(("clientToken", Value::String(t.clone())));
        }
        Ok(json::to_string(&object(out)))
    }

    /// Turns a plan into a refusal with `r` (e.g. the store could not be written).
    pub fn refuse(&self, mut plan: Plan, r: Rejection, payload: &[u8], now: u64) -> Plan {
        let token = read_request(payload, plan.op).ok().and_then(|q| q.token);
        plan.answer = (
            format!("{}/rejected", plan.op.as_str()),
            error_body(&r, token.as_deref(), now),
        );
        plan.rejection = Some(r);
        plan.side.clear();
        plan.new = None;
        plan.sync_out = None;
        plan
    }

    /// Keeps a planned change (after the shell stored it), with its stored size.
    pub fn apply(&mut self, plan: &mut Plan, stored_bytes: usize) {
        if let Some(s) = plan.new.take() {
            self.account(&plan.thing, stored_bytes);
            self.map.insert(plan.thing.clone(), s);
        }
    }

    /// Records the stored size of a thing's file (after a sync-mark rewrite).
    pub fn set_stored_bytes(&mut self, thing: &str, n: usize) {
        self.account(thing, n);
    }

    /// Replaces a thing's sync bookkeeping (the shell stores the shadow afterwards).
    pub fn set_sync_mark(&mut self, thing: &str, mark: sync::SyncMark) {
        if let Some(s) = self.map.get_mut(thing) {
            s.sync = mark;
        }
    }
}

/// `update/delta` (when desired differs from reported) and `update/documents` for an accepted
/// update from `prev` (None: a new shadow) to `next`.
fn update_side_messages(
    thing: &str,
    prev: Option<&Shadow>,
    next: &Shadow,
    token: Option<&str>,
    now: u64,
) -> Vec<Reply> {
    let tok = || token.map(|t| ("clientToken", Value::String(t.to_string())));
    let mut side = Vec::new();
    if let Some(d) = next.delta() {
        let meta = doc::pick_meta(&d, next.meta_desired.as_ref());
        let mut f = vec![
            ("version", doc::int(next.version)),
            ("timestamp", doc::int(now)),
            ("state", d),
            ("metadata", meta),
        ];
        f.extend(tok());
        side.push(Reply {
            topic: shadow_topic(thing, "update/delta"),
            body: json::to_string(&object(f)),
        });
    }
    let mut f = Vec::new();
    if let Some(p) = prev {
        f.push(("previous", p.snapshot()));
    }
    f.push(("current", next.snapshot()));
    f.push(("timestamp", doc::int(now)));
    f.extend(tok());
    side.push(Reply {
        topic: shadow_topic(thing, "update/documents"),
        body: json::to_string(&object(f)),
    });
    side
}

fn object(fields: Vec<(&str, Value)>) -> Value {
    Value::Object(
        fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

/// AWS's error document.
fn error_body(r: &Rejection, token: Option<&str>, now: u64) -> String {
    let mut f = vec![
        ("code", Value::Int(i64::from(r.code))),
        ("message", Value::String(r.message.clone())),
        ("timestamp", doc::int(now)),
    ];
    if let Some(t) = token {
        f.push(("clientToken", Value::String(t.to_string())));
    }
    json::to_string(&object(f))
}

#[cfg(test)]
mod tests;
