//! The shadow service's thin shell: takes requests from the dispatcher ([`LocalSink`], for
//! subscriptions whose Target is `GGShadowService`) or from a Lambda runner
//! ([`ShadowService::request`]), stores changed shadows ([`store::Store`], atomic replace)
//! before answering, and puts every reply into the one work queue with Source
//! `GGShadowService`, so the router delivers it along the group's subscriptions like any
//! message. A full queue drops the reply and counts it (`replies_dropped`).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::rc::Rc;

use bytes::Bytes;

use crate::broker::LocalSink;
use crate::config::Endpoint;
use crate::json::Value;
use crate::limits;
use crate::status::unix_now;
use crate::workq::{QueueHandle, WorkItem};

use super::sync::{Step, SyncEngine};
use super::{parse_request_topic, store, Origin, Plan, Rejection, Reply, ShadowOp, Shadows};

/// What the sync needs of the cloud link: send (QoS 1 through the spool) and whether the
/// link is up.
pub trait CloudPort {
    fn send(&self, topic: &str, payload: Bytes) -> bool;
    fn connected(&self) -> bool;
}

/// Counters shown in `sprig status` under `shadows`.
#[derive(Debug, Default)]
pub struct ShadowStats {
    pub update: Cell<u64>,
    pub get: Cell<u64>,
    pub delete: Cell<u64>,
    pub accepted: Cell<u64>,
    /// Refusals by code.
    pub rejected: RefCell<BTreeMap<u16, u64>>,
    /// Replies (accepted/rejected/delta/documents) a full work queue could not take.
    pub replies_dropped: Cell<u64>,
    /// Shadow files that could not be written (the request was refused with 500).
    pub store_errors: Cell<u64>,
    /// Messages routed to GGShadowService on a topic that is not a shadow request.
    pub not_a_request: Cell<u64>,
}

fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1);
}

/// The local shadow service.
pub struct ShadowService {
    shadows: RefCell<Shadows>,
    store: store::Store,
    queue: QueueHandle,
    pub stats: ShadowStats,
    sync: RefCell<SyncEngine>,
    cloud: RefCell<Option<Rc<dyn CloudPort>>>,
    /// Cloud-bound sync messages the cloud link refused (spool full).
    sync_dropped: Cell<u64>,
    /// The things whose shadow topics the cloud link subscribed to when it started
    /// ([`ShadowService::pin_cloud_things`]); `None` before (or without a cloud link).
    sync_allowed: RefCell<Option<BTreeSet<String>>>,
}

impl ShadowService {
    /// Opens the store under `write_dir` and loads the shadows of `things` ((thing name,
    /// SyncShadow) for the core and each device).
    pub fn open(write_dir: &Path, things: &[(String, bool)], queue: QueueHandle) -> Rc<Self> {
        let svc = Rc::new(ShadowService {
            shadows: RefCell::new(Shadows::new(things, limits::SHADOW_STORE_MAX_BYTES)),
            store: store::Store::new(write_dir),
            queue,
            stats: ShadowStats::default(),
            sync: RefCell::new(SyncEngine::default()),
            cloud: RefCell::new(None),
            sync_dropped: Cell::new(0),
            sync_allowed: RefCell::new(None),
        });
        let kept = svc.reload();
        let (live, bytes) = svc.shadows.borrow().usage();
        log::info!(
            "shadows: {kept} loaded from {} ({live} live, {bytes} bytes; {} things may have one)",
            svc.store.dir().display(),
            things.len()
        );
        svc
    }

    /// Reads the store again: the shadows in memory become exactly the files of the things
    /// served (none after `sprig reset` removed the directory). Returns how many were loaded.
    fn reload(&self) -> usize {
        let mut sh = self.shadows.borrow_mut();
        sh.clear();
        let mut kept = 0;
        for (thing, s, n) in self.store.load_all() {
            if sh.load(&thing, s, n) {
                kept += 1;
            }
        }
        kept
    }

    /// Called once the cloud link's filters are fixed (it subscribes only when it starts):
    /// from then on only the things syncing now may sync; a deployment that sets SyncShadow on
    /// another thing takes effect at the next start (logged).
    pub fn pin_cloud_things(&self) {
        *self.sync_allowed.borrow_mut() = Some(self.synced_things().into_iter().collect());
    }

    /// A deployment was applied (or `sprig reset` emptied the group): `things` is the new
    /// (thing name, SyncShadow) set. Things that left lose their shadow in memory (their file
    /// stays: a Greengrass core keeps its shadow database across deployments, only a reset
    /// removes it; a thing that rejoins finds its shadow again); new things are served at once;
    /// the shadows in memory are read again from the store (so a reset's removal shows);
    /// SyncShadow changes start or stop the cloud sync of a thing.
    pub fn set_things(&self, things: &[(String, bool)]) {
        let things: Vec<(String, bool)> = {
            let allowed = self.sync_allowed.borrow();
            things
                .iter()
                .map(|(t, sync)| {
                    let ok = !*sync || allowed.as_ref().is_none_or(|a| a.contains(t));
                    if !ok {
                        log::warn!("shadows: SyncShadow of {t} takes effect at the next start: the cloud link subscribes to shadow topics only when it starts; until then its shadow is local only");
                    }
                    (t.clone(), *sync && ok)
                })
                .collect()
        };
        let r = self.shadows.borrow_mut().set_things(&things);
        for t in &r.removed {
            log::info!("shadows: {t} left the group: its shadow is no longer served (the file stays until `sprig reset`; it is served again if {t} rejoins)");
        }
        let kept = self.reload();
        for t in &r.sync_stopped {
            self.sync.borrow_mut().thing_stopped(t);
            log::info!("shadow sync: {t} no longer syncs with the cloud");
        }
        for t in &r.sync_started {
            log::info!("shadow sync: {t} now syncs with the cloud");
            let steps = self.sync.borrow_mut().thing_started(t);
            self.run_steps(steps);
        }
        let (live, bytes) = self.shadows.borrow().usage();
        log::info!(
            "shadows: group applied: {} things may have a shadow ({} added, {} removed); {kept} read from the store ({live} live, {bytes} bytes)",
            things.len(),
            r.added.len(),
            r.removed.len()
        );
    }

    /// The things whose shadows sync with the cloud, sorted.
    pub fn synced_things(&self) -> Vec<String> {
        self.shadows.borrow().synced_things()
    }

    /// The cloud topics the sync needs for `thing` (subscribed by the cloud link).
    pub fn cloud_filters(thing: &str) -> [String; 3] {
        ["update/+", "get/+", "delete/+"].map(|s| super::shadow_topic(thing, s))
    }

    /// Whether a cloud message belongs to the sync (a synced thing's shadow response).
    pub fn takes_cloud_topic(&self, topic: &str) -> bool {
        topic
            .strip_prefix("$aws/things/")
            .and_then(|r| r.split_once("/shadow/"))
            .is_some_and(|(t, _)| self.shadows.borrow().syncs(t))
    }

    /// Starts the cloud sync over `cloud`: watches the link every
    /// [`limits::SHADOW_SYNC_TICK_MS`] (reconciles with `get` when it comes up, asks again
    /// after `timeout_secs` without an answer). Runs until dropped.
    pub async fn run_sync(self: Rc<Self>, cloud: Rc<dyn CloudPort>, timeout_secs: u64) {
        *self.cloud.borrow_mut() = Some(cloud.clone());
        let ticks_per_timeout = (timeout_secs * 1000)
            .div_ceil(limits::SHADOW_SYNC_TICK_MS)
            .max(1);
        let mut tick = 0u64;
        loop {
            tick += 1;
            let up = cloud.connected();
            let was = self.sync.borrow().is_up();
            let steps = if up && !was {
                log::info!(
                    "shadow sync: cloud link up; reconciling {:?}",
                    self.synced_things()
                );
                let sh = self.shadows.borrow();
                self.sync.borrow_mut().link_up(&sh, tick)
            } else if !up && was {
                log::info!("shadow sync: cloud link down; local changes are sent when it returns");
                self.sync.borrow_mut().link_down();
                Vec::new()
            } else {
                self.sync.borrow_mut().tick(tick, ticks_per_timeout)
            };
            self.run_steps(steps);
            async_io::Timer::after(std::time::Duration::from_millis(
                limits::SHADOW_SYNC_TICK_MS,
            ))
            .await;
        }
    }

    /// A message from the cloud on a synced thing's shadow topic.
    pub fn cloud_message(&self, topic: &str, payload: &[u8]) {
        let steps = {
            let sh = self.shadows.borrow();
            self.sync.borrow_mut().cloud_message(topic, payload, &sh)
        };
        self.run_steps(steps);
    }

    fn run_steps(&self, steps: Vec<Step>) {
        for step in steps {
            match step {
                Step::Cloud { topic, body } => {
                    let sent = self
                        .cloud
                        .borrow()
                        .as_ref()
                        .is_some_and(|c| c.send(&topic, Bytes::from(body)));
                    if !sent {
                        bump(&self.sync_dropped);
                    }
                }
                Step::Local { thing, body } => {
                    let plan =
                        self.handle_from(Origin::Cloud, &thing, ShadowOp::Update, body.as_bytes());
                    self.publish(&plan.answer_reply());
                    for r in &plan.side {
                        self.publish(r);
                    }
                }
                Step::Mark { thing, mark } => {
                    let mut sh = self.shadows.borrow_mut();
                    let same = sh.get(&thing).is_none_or(|s| s.sync == mark);
                    sh.set_sync_mark(&thing, mark);
                    if same {
                        continue;
                    }
                    if let Some(s) = sh.get(&thing) {
                        let bytes = store::encode(s);
                        if let Err(e) = self.store.write(&thing, bytes.as_bytes()) {
                            bump(&self.stats.store_errors);
                            log::error!("shadows: cannot store the sync state of {thing}: {e}");
                        } else {
                            sh.set_stored_bytes(&thing, bytes.len());
                        }
                    }
                }
            }
        }
    }

    /// A request from a Lambda function (no subscription needed, as in Greengrass): returns the
    /// answer's topic suffix (`update/accepted`, `get/rejected`, ...) and body. Side messages
    /// (`update/delta`, `update/documents`) go into the work queue as for MQTT requests.
    pub fn request(&self, thing: &str, op: ShadowOp, payload: &[u8]) -> (String, Bytes) {
        let plan = self.handle(thing, op, payload);
        for r in &plan.side {
            self.publish(r);
        }
        (plan.answer.0, Bytes::from(plan.answer.1))
    }

    /// Plans, stores, applies, counts and logs one request; the caller publishes.
    fn handle(&self, thing: &str, op: ShadowOp, payload: &[u8]) -> Plan {
        self.handle_from(Origin::Local, thing, op, payload)
    }

    fn handle_from(&self, origin: Origin, thing: &str, op: ShadowOp, payload: &[u8]) -> Plan {
        bump(match op {
            ShadowOp::Update => &self.stats.update,
            ShadowOp::Get => &self.stats.get,
            ShadowOp::Delete => &self.stats.delete,
        });
        let now = unix_now();
        let mut plan = self
            .shadows
            .borrow()
            .plan_from(origin, thing, op, payload, now);
        if let Some(new) = &plan.new {
            let bytes = store::encode(new);
            match self.store.write(thing, bytes.as_bytes()) {
                Ok(()) => self.shadows.borrow_mut().apply(&mut plan, bytes.len()),
                Err(e) => {
                    bump(&self.stats.store_errors);
                    log::error!(
                        "shadows: cannot store the shadow of {thing} in {}: {e}",
                        self.store.dir().display()
                    );
                    let r = Rejection {
                        code: 500,
                        message: "Internal service failure".into(),
                    };
                    plan = self.shadows.borrow().refuse(plan, r, payload, now);
                }
            }
        }
        if let Some(out) = plan.sync_out.take() {
            let steps = self.sync.borrow_mut().local_change(thing, &out);
            self.run_steps(steps);
        }
        match &plan.rejection {
            None => bump(&self.stats.accepted),
            Some(r) => {
                *self.stats.rejected.borrow_mut().entry(r.code).or_insert(0) += 1;
                log::info!(
                    "shadow {} of {thing} rejected: {} {}",
                    op.as_str(),
                    r.code,
                    r.message
                );
            }
        }
        plan
    }

    fn publish(&self, r: &Reply) {
        let item = WorkItem {
            source: Endpoint::ShadowService,
            topic: r.topic.clone(),
            payload: Bytes::from(r.body.clone()),
        };
        if self.queue.push(item).is_err() {
            bump(&self.stats.replies_dropped);
            log::debug!("shadows: the work queue is full: dropped {:?}", r.topic);
        }
    }

    /// The `shadows` section of `sprig status` (flat: one line in `sprig status`; a
    /// `rejected_<code>` counter per code seen).
    pub fn status(&self) -> Value {
        let s = &self.stats;
        let (live, bytes) = self.shadows.borrow().usage();
        let n = |c: &Cell<u64>| Value::Int(c.get() as i64);
        let rejected = s.rejected.borrow();
        let mut f: Vec<(String, Value)> = vec![
            ("count".into(), Value::Int(live as i64)),
            ("bytes".into(), Value::Int(bytes as i64)),
            (
                "bytes_limit".into(),
                Value::Int(limits::SHADOW_STORE_MAX_BYTES as i64),
            ),
            ("updates".into(), n(&s.update)),
            ("gets".into(), n(&s.get)),
            ("deletes".into(), n(&s.delete)),
            ("accepted".into(), n(&s.accepted)),
            (
                "rejected".into(),
                Value::Int(rejected.values().sum::<u64>() as i64),
            ),
        ];
        f.extend(
            rejected
                .iter()
                .map(|(code, k)| (format!("rejected_{code}"), Value::Int(*k as i64))),
        );
        f.extend([
            ("replies_dropped".into(), n(&s.replies_dropped)),
            ("store_errors".into(), n(&s.store_errors)),
            ("not_a_request".into(), n(&s.not_a_request)),
        ]);
        Value::Object(f)
    }

    /// The `shadow_sync` section of `sprig status`.
    pub fn sync_status(&self) -> Value {
        let e = self.sync.borrow();
        let st = &e.stats;
        let int = |n: u64| Value::Int(i64::try_from(n).unwrap_or(i64::MAX));
        let things = self.synced_things();
        let dirty = things
            .iter()
            .filter(|t| self.shadows.borrow().get(t).is_some_and(|s| s.sync.dirty))
            .count();
        Value::Object(vec![
            ("things".into(), int(things.len() as u64)),
            (
                "link".into(),
                Value::String(if e.is_up() { "up" } else { "down" }.into()),
            ),
            ("unsynced".into(), int(dirty as u64)),
            ("sent".into(), int(st.sent)),
            (
                "cloud_changes_applied".into(),
                int(st.cloud_changes_applied),
            ),
            ("echoes_ignored".into(), int(st.echoes_ignored)),
            ("rejected_by_cloud".into(), int(st.rejected_by_cloud)),
            ("get_timeouts".into(), int(st.get_timeouts)),
            ("dropped".into(), int(self.sync_dropped.get())),
        ])
    }
}

impl LocalSink for ShadowService {
    fn deliver(&self, _target: &Endpoint, source: &Endpoint, topic: &str, payload: &Bytes) -> bool {
        let Some((thing, op)) = parse_request_topic(topic) else {
            bump(&self.stats.not_a_request);
            log::debug!("shadows: {topic:?} from {source:?} is not a shadow request: ignored");
            return false;
        };
        let plan = self.handle(thing, op, payload);
        // The answer first, then delta and documents (the queue keeps the order).
        self.publish(&plan.answer_reply());
        for r in &plan.side {
            self.publish(r);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workq::SharedQueue;

    fn tmp(label: &str) -> std::path::PathBuf {
        let d =
            std::env::temp_dir().join(format!("sprig-shadow-svc-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn the_lambda_call_answers_directly_and_queues_the_side_messages() {
        let dir = tmp("lambda");
        let q = SharedQueue::new(2, 1 << 20);
        let svc = ShadowService::open(&dir, &[("light".into(), false)], q.clone());
        let (suffix, body) = svc.request(
            "light",
            ShadowOp::Update,
            br#"{"state":{"desired":{"p":"R"}},"clientToken":"fn"}"#,
        );
        assert_eq!(suffix, "update/accepted");
        assert!(body.starts_with(br#"{"state":{"desired":{"p":"R"}}"#));
        // delta and documents went into the queue as GGShadowService messages; no answer.
        let topics: Vec<(Endpoint, String)> = std::iter::from_fn(|| q.try_pop())
            .map(|i| (i.source, i.topic))
            .collect();
        assert_eq!(
            topics,
            vec![
                (
                    Endpoint::ShadowService,
                    "$aws/things/light/shadow/update/delta".into()
                ),
                (
                    Endpoint::ShadowService,
                    "$aws/things/light/shadow/update/documents".into()
                ),
            ]
        );
        // Through the dispatcher's seam the answer is queued too; a full queue drops and counts.
        let ok = svc.deliver(
            &Endpoint::ShadowService,
            &Endpoint::Device("light".into()),
            "$aws/things/light/shadow/update",
            &Bytes::from_static(br#"{"state":{"reported":{"p":"R"}}}"#),
        );
        assert!(ok);
        assert_eq!(
            q.try_pop().unwrap().topic,
            "$aws/things/light/shadow/update/accepted"
        );
        assert_eq!(
            q.try_pop().unwrap().topic,
            "$aws/things/light/shadow/update/documents"
        );
        assert_eq!(svc.stats.replies_dropped.get(), 0);
        for _ in 0..2 {
            svc.request("light", ShadowOp::Get, b"");
        }
        svc.request(
            "light",
            ShadowOp::Update,
            br#"{"state":{"desired":{"p":"G"}}}"#,
        );
        assert_eq!(svc.stats.replies_dropped.get(), 0, "two side messages fit");
        svc.request(
            "light",
            ShadowOp::Update,
            br#"{"state":{"desired":{"p":"Y"}}}"#,
        );
        assert_eq!(svc.stats.replies_dropped.get(), 2);
        // Not a request: counted, not taken.
        assert!(!svc.deliver(
            &Endpoint::ShadowService,
            &Endpoint::Device("light".into()),
            "$aws/things/light/shadow/update/accepted",
            &Bytes::new(),
        ));
        assert_eq!(svc.stats.not_a_request.get(), 1);
        // A restart reads the stored shadow back.
        let again = ShadowService::open(
            &dir,
            &[("light".into(), false)],
            SharedQueue::new(8, 1 << 20),
        );
        let (_, body) = again.request("light", ShadowOp::Get, b"");
        assert!(body.windows(11).any(|w| w == br#""version":4"#), "{body:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_new_thing_set_serves_new_things_forgets_removed_ones_and_rereads_the_store() {
        let dir = tmp("retarget");
        let q = SharedQueue::new(64, 1 << 20);
        let svc = ShadowService::open(&dir, &[("core".into(), false)], q.clone());
        let up = |t: &str| {
            svc.request(t, ShadowOp::Update, br#"{"state":{"reported":{"on":1}}}"#)
                .0
        };
        let get = |t: &str| svc.request(t, ShadowOp::Get, b"");
        assert_eq!(up("dev"), "update/rejected", "not in the group yet");
        assert_eq!(up("core"), "update/accepted");
        // A deployment adds dev.
        svc.set_things(&[("core".into(), false), ("dev".into(), false)]);
        assert_eq!(up("dev"), "update/accepted");
        assert_eq!(svc.shadows.borrow().usage().0, 2);
        // One removes it: 404 Thing not found, no longer counted; the file stays.
        svc.set_things(&[("core".into(), false)]);
        let (suffix, body) = get("dev");
        assert_eq!(suffix, "get/rejected");
        assert!(body.starts_with(br#"{"code":404,"message":"Thing not found""#));
        assert_eq!(svc.shadows.borrow().usage().0, 1);
        assert!(store::shadow_dir(&dir).join("dev.json").exists());
        // Rejoining brings the stored shadow back.
        svc.set_things(&[("core".into(), false), ("dev".into(), false)]);
        assert_eq!(get("dev").0, "get/accepted");
        // `sprig reset` removes the directory, then the empty group is applied: nothing is
        // left in memory.
        std::fs::remove_dir_all(store::shadow_dir(&dir)).unwrap();
        svc.set_things(&[("core".into(), false)]);
        let (suffix, body) = get("core");
        assert_eq!(suffix, "get/rejected");
        assert!(body.starts_with(br#"{"code":404,"message":"No shadow exists with name: 'core'""#));
        assert_eq!(svc.shadows.borrow().usage(), (0, 0));
        let _ = std::fs::remove_dir_all(&dir);
    }

    struct Port(RefCell<Vec<String>>);
    impl CloudPort for Port {
        fn send(&self, topic: &str, _payload: Bytes) -> bool {
            self.0.borrow_mut().push(topic.to_string());
            true
        }
        fn connected(&self) -> bool {
            true
        }
    }

    #[test]
    fn sync_follows_syncshadow_only_for_things_the_cloud_link_subscribed_at_start() {
        let dir = tmp("resync");
        let svc = ShadowService::open(
            &dir,
            &[("a".into(), true), ("b".into(), false)],
            SharedQueue::new(64, 1 << 20),
        );
        svc.pin_cloud_things();
        let port = Rc::new(Port(RefCell::new(Vec::new())));
        *svc.cloud.borrow_mut() = Some(port.clone());
        let steps = {
            let sh = svc.shadows.borrow();
            svc.sync.borrow_mut().link_up(&sh, 1)
        };
        svc.run_steps(steps);
        assert_eq!(*port.0.borrow(), vec!["$aws/things/a/shadow/get"]);
        // b asks to sync: its topics were not subscribed, so it stays local; a stops.
        svc.set_things(&[("a".into(), false), ("b".into(), true)]);
        assert!(svc.synced_things().is_empty());
        assert!(!svc.takes_cloud_topic("$aws/things/a/shadow/get/accepted"));
        // a syncs again: reconciled at once with a get (the link is up).
        svc.set_things(&[("a".into(), true), ("b".into(), true)]);
        assert_eq!(svc.synced_things(), vec!["a".to_string()]);
        assert_eq!(port.0.borrow().len(), 2);
        assert_eq!(port.0.borrow()[1], "$aws/things/a/shadow/get");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_store_that_cannot_be_written_refuses_with_500_and_keeps_nothing() {
        let dir = tmp("ro");
        // The shadows directory's place is taken by a file: every write fails.
        let state = dir.join("ggc/var/state");
        std::fs::create_dir_all(&state).unwrap();
        std::fs::write(state.join("shadows"), b"not a directory").unwrap();
        let svc = ShadowService::open(
            &dir,
            &[("light".into(), false)],
            SharedQueue::new(8, 1 << 20),
        );
        let (suffix, body) = svc.request(
            "light",
            ShadowOp::Update,
            br#"{"state":{"reported":{"x":1}},"clientToken":"c"}"#,
        );
        assert_eq!(suffix, "update/rejected");
        assert!(body.starts_with(br#"{"code":500,"message":"Internal service failure""#));
        assert!(body.ends_with(br#""clientToken":"c"}"#));
        assert_eq!(svc.stats.store_errors.get(), 1);
        assert_eq!(svc.request("light", ShadowOp::Get, b"").0, "get/rejected");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
