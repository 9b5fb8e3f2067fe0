//! Cloud sync bookkeeping kept with each shadow of a `SyncShadow: true` thing.
//!
//! Local and cloud versions are tracked separately: `cloud_version` is the last version the
//! cloud's shadow service reported for this thing and never appears in local documents;
//! `dirty` says the local document changed since the cloud last acknowledged it (so after a
//! restart or an outage the latest state, not a replay, is sent).

use std::collections::HashMap;

use crate::json::{self, Value};
use crate::limits;

use super::{doc, shadow_topic, Shadows, SyncOut};

/// Per-shadow sync state, stored in the shadow's file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncMark {
    pub cloud_version: u64,
    pub dirty: bool,
}

impl SyncMark {
    pub fn encode(&self) -> Value {
        Value::Object(vec![
            ("cloudVersion".into(), doc::int(self.cloud_version)),
            ("dirty".into(), Value::Bool(self.dirty)),
        ])
    }

    /// Reads what [`SyncMark::encode`] wrote; anything missing reads as "never synced".
    pub fn decode(v: Option<&Value>) -> SyncMark {
        let Some(v) = v else {
            return SyncMark::default();
        };
        SyncMark {
            cloud_version: v
                .get("cloudVersion")
                .and_then(Value::as_i64)
                .and_then(|i| u64::try_from(i).ok())
                .unwrap_or(0),
            dirty: v.get("dirty").and_then(Value::as_bool).unwrap_or(false),
        }
    }
}

/// Prefix of the clientTokens sprig puts on its own cloud requests: documents that carry one
/// are echoes of the core's own writes and are not applied back.
pub const TOKEN_PREFIX: &str = "sprig-sync-";

/// What the sync engine asks the shell to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Publish to the cloud (QoS 1, through the spool).
    Cloud { topic: String, body: String },
    /// Apply an update to the local shadow as a change from the cloud ([`super::Origin::Cloud`]):
    /// local accepted/delta/documents are published, nothing goes back up.
    Local { thing: String, body: String },
    /// Store a new sync mark for the thing.
    Mark { thing: String, mark: SyncMark },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Waiting {
    /// A `get` sent at this tick (reconciliation after the link came up).
    Get(String, u64),
    /// The last update/delete sent.
    Push(String),
}

/// Counters for `sprig status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncStats {
    pub sent: u64,
    pub cloud_changes_applied: u64,
    pub echoes_ignored: u64,
    pub rejected_by_cloud: u64,
    pub get_timeouts: u64,
}

/// The cloud sync of `SyncShadow` things, sans-IO.
///
/// Conflict rule (README): `reported` — the core wins (the device talks to the core; the cloud's
/// reported is overwritten with the core's); `desired` — the later write wins: a change made in
/// the cloud while the core was connected is applied locally at once; after an outage, when
/// both sides changed, the side whose newest `desired` metadata timestamp is later wins (the
/// core's clock against AWS IoT's). Local and cloud versions are separate counters.
#[derive(Debug, Default)]
pub struct SyncEngine {
    up: bool,
    seq: u64,
    /// At most one entry per synced thing.
    waiting: HashMap<String, Waiting>,
    /// The tick of the last `link_up` or `tick` call (the time of a `get` sent in between).
    last_tick: u64,
    pub stats: SyncStats,
}

fn parse_doc(payload: &[u8]) -> Option<Value> {
    json::parse(payload, limits::MAX_PAYLOAD_BYTES, limits::MAX_JSON_DEPTH).ok()
}

fn version_of(v: Option<&Value>) -> u64 {
    v.and_then(Value::as_i64)
        .and_then(|i| u64::try_from(i).ok())
        .unwrap_or(0)
}

/// The newest `timestamp` anywhere in a metadata tree.
fn newest(meta: Option<&Value>) -> u64 {
    match meta {
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                if k == "timestamp" {
                    version_of(Some(v))
                } else {
                    newest(Some(v))
                }
            })
            .max()
            .unwrap_or(0),
        Some(Value::Array(a)) => a.iter().map(|v| newest(Some(v))).max().unwrap_or(0),
        _ => 0,
    }
}

/// A merge patch that turns `from` into `to` (`null` for keys `to` lacks); `None` when equal.
pub fn replace_patch(from: Option<&Value>, to: Option<&Value>) -> Option<Value> {
    match (from, to) {
        (None, None) => None,
        (Some(_), None) => Some(Value::Null),
        (Some(Value::Object(f)), Some(Value::Object(t))) => {
            let mut out = Vec::new();
            for (k, tv) in t {
                let fv = f.iter().find(|(x, _)| x == k).map(|(_, v)| v);
                match (fv, tv) {
                    (Some(fv @ Value::Object(_)), Value::Object(_)) => {
                        if let Some(p) = replace_patch(Some(fv), Some(tv)) {
                            out.push((k.clone(), p));
                        }
                    }
                    (Some(fv), _) if fv == tv => {}
                    _ => out.push((k.clone(), tv.clone())),
                }
            }
            for (k, _) in f {
                if !t.iter().any(|(x, _)| x == k) {
                    out.push((k.clone(), Value::Null));
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        (_, Some(t)) => Some(t.clone()),
    }
}

/// `{"clientToken": tok}`: the body of a get or delete.
fn token_body(tok: &str) -> String {
    json::to_string(&Value::Object(vec![(
        "clientToken".into(),
        Value::String(tok.into()),
    )]))
}

fn state_body(desired: Option<Value>, reported: Option<Value>, token: &str) -> String {
    let mut state = Vec::new();
    if let Some(d) = desired {
        state.push(("desired".to_string(), d));
    }
    if let Some(r) = reported {
        state.push(("reported".to_string(), r));
    }
    json::to_string(&Value::Object(vec![
        ("state".into(), Value::Object(state)),
        ("clientToken".into(), Value::String(token.into())),
    ]))
}

impl SyncEngine {
    fn token(&mut self) -> String {
        self.seq += 1;
        format!("{TOKEN_PREFIX}{}", self.seq)
    }

    fn send(&mut self, thing: &str, op: &str, body: String) -> Step {
        self.stats.sent += 1;
        Step::Cloud {
            topic: shadow_topic(thing, op),
            body,
        }
    }

    /// Sends an update/delete whose answer clears the thing's dirty mark.
    fn push(&mut self, thing: &str, op: &str, body: String, tok: String) -> Step {
        self.waiting.insert(thing.to_string(), Waiting::Push(tok));
        self.send(thing, op, body)
    }

    fn get(&mut self, thing: &str, tick: u64) -> Step {
        let tok = self.token();
        let body = token_body(&tok);
        self.waiting
            .insert(thing.to_string(), Waiting::Get(tok, tick));
        self.send(thing, "get", body)
    }

    pub fn is_up(&self) -> bool {
        self.up
    }

    /// The link came up: reconcile every synced thing with a `get`.
    pub fn link_up(&mut self, shadows: &Shadows, tick: u64) -> Vec<Step> {
        self.up = true;
        self.last_tick = tick;
        self.waiting.clear();
        shadows
            .synced_things()
            .iter()
            .map(|t| self.get(t, tick))
            .collect()
    }

    pub fn link_down(&mut self) {
        self.up = false;
        self.waiting.clear();
    }

    /// Re-sends `get`s unanswered for `timeout` ticks (system.shadowSyncTimeout).
    pub fn tick(&mut self, tick: u64, timeout: u64) -> Vec<Step> {
        self.last_tick = tick;
        if !self.up {
            return Vec::new();
        }
        let late: Vec<String> = self
            .waiting
            .iter()
            .filter(
                |(_, w)| matches!(w, Waiting::Get(_, at) if tick.saturating_sub(*at) >= timeout),
            )
            .map(|(t, _)| t.clone())
            .collect();
        late.into_iter()
            .map(|t| {
                self.stats.get_timeouts += 1;
                log::warn!("shadow sync: no answer from the cloud to get of {t}; asking again");
                self.get(&t, tick)
            })
            .collect()
    }

    /// `thing` started syncing while the core runs (a deployment set its SyncShadow): with
    /// the link up it is reconciled now, else at the next link-up like the others.
    pub fn thing_started(&mut self, thing: &str) -> Vec<Step> {
        if !self.up {
            return Vec::new();
        }
        vec![self.get(thing, self.last_tick)]
    }

    /// `thing` no longer syncs (or left the group): nothing more is awaited for it.
    pub fn thing_stopped(&mut self, thing: &str) {
        self.waiting.remove(thing);
    }

    /// A local change to a synced shadow was stored (dirty): send it now if the link is up
    /// and the thing is reconciled, else it goes with the next reconciliation.
    pub fn local_change(&mut self, thing: &str, out: &SyncOut) -> Vec<Step> {
        if !self.up || matches!(self.waiting.get(thing), Some(Waiting::Get(..))) {
            return Vec::new();
        }
        let tok = self.token();
        let (op, body) = match out {
            SyncOut::Update(state) => (
                "update",
                json::to_string(&Value::Object(vec![
                    ("state".into(), state.clone()),
                    ("clientToken".into(), Value::String(tok.clone())),
                ])),
            ),
            SyncOut::Delete => ("delete", token_body(&tok)),
        };
        vec![self.push(thing, op, body, tok)]
    }

    /// A message from the cloud on one of the synced things' shadow topics.
    pub fn cloud_message(&mut self, topic: &str, payload: &[u8], shadows: &Shadows) -> Vec<Step> {
        let Some(rest) = topic.strip_prefix("$aws/things/") else {
            return Vec::new();
        };
        let Some((thing, what)) = rest.split_once("/shadow/") else {
            return Vec::new();
        };
        if !shadows.syncs(thing) {
            return Vec::new();
        }
        let Some(doc) = parse_doc(payload) else {
            log::warn!("shadow sync: unreadable message from the cloud on {topic:?}: ignored");
            return Vec::new();
        };
        let token = doc.get("clientToken").and_then(Value::as_str).unwrap_or("");
        let ours = token.starts_with(TOKEN_PREFIX);
        let waiting = self.waiting.get(thing).cloned();
        let mark = shadows
            .get(thing)
            .map(|s| s.sync.clone())
            .unwrap_or_default();
        match what {
            "get/accepted" | "get/rejected" => match waiting {
                Some(Waiting::Get(t, _)) if t == token => {
                    self.waiting.remove(thing);
                    let found = what == "get/accepted";
                    if !found && version_of(doc.get("code")) != 404 {
                        self.stats.rejected_by_cloud += 1;
                        log::warn!(
                            "shadow sync: the cloud refused get of {thing}: {}",
                            json::to_string(&doc)
                        );
                        return Vec::new();
                    }
                    self.reconcile(thing, found.then_some(&doc), shadows)
                }
                _ => Vec::new(),
            },
            "update/accepted" | "delete/accepted" if ours => {
                let mut mark = mark;
                mark.cloud_version = version_of(doc.get("version"));
                if waiting == Some(Waiting::Push(token.to_string())) {
                    self.waiting.remove(thing);
                    mark.dirty = false;
                }
                vec![Step::Mark {
                    thing: thing.into(),
                    mark,
                }]
            }
            "update/rejected" | "delete/rejected" if ours => {
                self.stats.rejected_by_cloud += 1;
                if waiting == Some(Waiting::Push(token.to_string())) {
                    self.waiting.remove(thing);
                }
                log::warn!(
                    "shadow sync: the cloud refused {what} of {thing}: {}; the change is sent again after the next reconnect",
                    json::to_string(&doc)
                );
                Vec::new()
            }
            "update/documents" if ours => {
                self.stats.echoes_ignored += 1;
                Vec::new()
            }
            "update/documents" => self.cloud_change(thing, &doc, mark, shadows),
            _ => Vec::new(),
        }
    }

    /// A change written in the cloud (console, app): desired goes down, reported is the core's.
    fn cloud_change(
        &mut self,
        thing: &str,
        doc: &Value,
        mut mark: SyncMark,
        shadows: &Shadows,
    ) -> Vec<Step> {
        let cur = doc.get("current");
        let version = version_of(cur.and_then(|c| c.get("version")));
        if version <= mark.cloud_version {
            return Vec::new(); // an old or repeated document
        }
        mark.cloud_version = version;
        let mut steps = Vec::new();
        let state = |d: Option<&Value>, k: &str| {
            d.and_then(|d| d.get("state"))
                .and_then(|s| s.get(k))
                .cloned()
        };
        let prev = doc.get("previous");
        if let Some(patch) = replace_patch(
            state(prev, "desired").as_ref(),
            state(cur, "desired").as_ref(),
        ) {
            self.stats.cloud_changes_applied += 1;
            let mut f = vec![(
                "state".to_string(),
                Value::Object(vec![("desired".into(), patch)]),
            )];
            if let Some(t) = doc.get("clientToken") {
                f.push(("clientToken".into(), t.clone()));
            }
            steps.push(Step::Local {
                thing: thing.into(),
                body: json::to_string(&Value::Object(f)),
            });
        }
        // Reported: the core wins; answer a cloud-side change of it with the core's.
        let local = shadows.get(thing).filter(|s| !s.deleted);
        let cloud_rep = state(cur, "reported");
        if cloud_rep != state(prev, "reported") {
            if let Some(p) =
                replace_patch(cloud_rep.as_ref(), local.and_then(|l| l.reported.as_ref()))
            {
                let tok = self.token();
                steps.push(self.send(thing, "update", state_body(None, Some(p), &tok)));
            }
        }
        steps.push(Step::Mark {
            thing: thing.into(),
            mark,
        });
        steps
    }

    /// After a (re)connect: bring the cloud copy and the local one together. `cloud`: the
    /// cloud's get/accepted document, `None` when the cloud has no shadow.
    fn reconcile(&mut self, thing: &str, cloud: Option<&Value>, shadows: &Shadows) -> Vec<Step> {
        let local = shadows.get(thing);
        let mut mark = local.map(|s| s.sync.clone()).unwrap_or_default();
        let live = local.filter(|s| !s.deleted);
        let tok = self.token();
        let cstate = cloud.and_then(|c| c.get("state"));
        let (cdes, crep) = (
            cstate.and_then(|s| s.get("desired")),
            cstate.and_then(|s| s.get("reported")),
        );
        let mut steps = Vec::new();
        match (cloud, live) {
            (None, None) => mark.dirty = false,
            // The cloud has no shadow: the whole local one goes up.
            (None, Some(l)) => {
                let body = state_body(l.desired.clone(), l.reported.clone(), &tok);
                steps.push(self.push(thing, "update", body, tok));
            }
            // Deleted here while offline: delete there too.
            (Some(_), None) if mark.dirty => {
                steps.push(self.push(thing, "delete", token_body(&tok), tok));
            }
            (Some(_), None) => {
                mark.dirty = false;
                if let Some(d) = cdes {
                    self.stats.cloud_changes_applied += 1;
                    steps.push(Step::Local {
                        thing: thing.into(),
                        body: state_body(Some(d.clone()), None, &tok),
                    });
                }
            }
            (Some(c), Some(l)) => {
                let cloud_moved = version_of(c.get("version")) != mark.cloud_version;
                let cloud_newer = newest(c.get("metadata").and_then(|m| m.get("desired")))
                    > newest(l.meta_desired.as_ref());
                let mut up_desired = None;
                if cloud_moved && (!mark.dirty || cloud_newer) {
                    if let Some(p) = replace_patch(l.desired.as_ref(), cdes) {
                        self.stats.cloud_changes_applied += 1;
                        let body = json::to_string(&Value::Object(vec![(
                            "state".into(),
                            Value::Object(vec![("desired".into(), p)]),
                        )]));
                        steps.push(Step::Local {
                            thing: thing.into(),
                            body,
                        });
                    }
                } else {
                    up_desired = replace_patch(cdes, l.desired.as_ref());
                }
                let up_reported = replace_patch(crep, l.reported.as_ref());
                if up_desired.is_some() || up_reported.is_some() {
                    let body = state_body(up_desired, up_reported, &tok);
                    steps.push(self.push(thing, "update", body, tok));
                } else {
                    mark.dirty = false;
                }
            }
        }
        if let Some(c) = cloud {
            mark.cloud_version = version_of(c.get("version"));
        }
        steps.push(Step::Mark {
            thing: thing.into(),
            mark,
        });
        steps
    }
}
