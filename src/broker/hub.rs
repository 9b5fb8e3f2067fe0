//! The hub: state the message path shares on the one thread — the router, the work queue, the
//! connected devices' outboxes, the counters — and the dispatcher that drains the queue.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use bytes::Bytes;

use crate::config::{Endpoint, Group};
use crate::limits;
use crate::router::{EndpointId, FastMap, Router};
use crate::topic;
use crate::workq::{Notify, QueueHandle, WorkItem};

/// Where cloud-bound messages go: the cloud link (spool + MQTT to AWS IoT) implements this.
/// Called on the event loop; must not block. Return `false` when the message was dropped
/// (the link counts its own drops; the hub counts refusals too).
pub trait CloudSink {
    fn send(&self, topic: &str, payload: &Bytes) -> bool;
}

/// Where messages for a local service go: the shadow service (Target `GGShadowService`) and the
/// Lambda runner (Target a function ARN) implement this; `target` is the endpoint the
/// subscription named. Called on the event loop; must not block. Return `false` when the
/// message was not taken (the sink counts and logs why; the hub counts the refusal too).
pub trait LocalSink {
    fn deliver(&self, target: &Endpoint, source: &Endpoint, topic: &str, payload: &Bytes) -> bool;

    /// Whether `target` could take one more message now (for a publish with
    /// `queueFullPolicy: AllOrError`). Default: yes.
    fn has_room(&self, _target: &Endpoint) -> bool {
        true
    }
}

/// Counters of the local message path, reported by `sprig status`.
#[derive(Debug, Default)]
pub struct BrokerStats {
    /// TLS connections open now (handshaking or connected).
    pub connections: Cell<usize>,
    pub accepted_total: Cell<u64>,
    /// Refused at accept: `sprig.maxConnections` reached.
    pub refused_connection_limit: Cell<u64>,
    /// Refused after the handshake: unknown certificate or client id mismatch.
    pub refused_auth: Cell<u64>,
    /// Handshake failures and timeouts, CONNECT timeouts.
    pub refused_handshake: Cell<u64>,
    /// Clients closed for malformed packets or protocol violations.
    pub closed_malformed: Cell<u64>,
    /// Clients closed for keep-alive expiry.
    pub closed_keep_alive: Cell<u64>,
    /// Messages a subscriber's full outbox could not take.
    pub dropped_slow_subscriber: Cell<u64>,
    /// PUBLISH packets over the size limit, skipped unread.
    pub dropped_oversize: Cell<u64>,
    /// Messages no subscription routes anywhere.
    pub dropped_no_route: Cell<u64>,
    /// Messages for the shadow service (not built yet: logged and dropped).
    pub dropped_shadow: Cell<u64>,
    /// Messages for Lambda functions or connectors (not built yet).
    pub dropped_no_local_target: Cell<u64>,
    /// Cloud-bound messages with no cloud link, or refused by it.
    pub dropped_cloud: Cell<u64>,
    /// Messages delivered to device outboxes.
    pub delivered: Cell<u64>,
}

fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1);
}

/// One connected device's bounded outbound queue of encoded PUBLISH frames, and its filters.
#[derive(Debug)]
pub struct Outbox {
    pub thing_name: String,
    frames: RefCell<VecDeque<Bytes>>,
    bytes: Cell<usize>,
    filters: RefCell<Vec<Box<str>>>,
    /// Wakes the connection's task: frames to send, or it was replaced.
    pub wake: Notify,
    /// Set when a newer connection with the same client id took over (MQTT §3.1.4-2).
    pub replaced: Cell<bool>,
}

impl Outbox {
    pub fn new(thing_name: &str) -> Outbox {
        Outbox {
            thing_name: thing_name.to_string(),
            // Grows on demand up to the bound, and is given back once drained (`take`): an idle
            // device holds no frame slots (256 of them were 8 KiB per device).
            frames: RefCell::new(VecDeque::new()),
            bytes: Cell::new(0),
            filters: RefCell::new(Vec::new()),
            wake: Notify::default(),
            replaced: Cell::new(false),
        }
    }

    /// Adds a granted filter; `false` when the device holds the maximum number already.
    pub fn add_filter(&self, filter: &str) -> bool {
        let mut f = self.filters.borrow_mut();
        if f.iter().any(|x| &**x == filter) {
            return true;
        }
        if f.len() >= limits::SESSION_MAX_FILTERS {
            return false;
        }
        f.push(filter.into());
        true
    }

    pub fn remove_filter(&self, filter: &str) {
        self.filters.borrow_mut().retain(|x| &**x != filter);
    }

    fn wants(&self, topic_name: &str) -> bool {
        self.filters
            .borrow()
            .iter()
            .any(|f| topic::filter_matches(f, topic_name))
    }

    /// Queues a frame, or drops it when the outbox is full. Returns whether it was queued.
    fn offer(&self, frame: Bytes) -> bool {
        let mut q = self.frames.borrow_mut();
        if q.len() >= limits::SESSION_OUTBOUND_MESSAGES
            || self.bytes.get() + frame.len() > limits::SESSION_OUTBOUND_BYTES
        {
            return false;
        }
        self.bytes.set(self.bytes.get() + frame.len());
        q.push_back(frame);
        drop(q);
        self.wake.notify();
        true
    }

    /// The next frame to send, if any.
    pub fn take(&self) -> Option<Bytes> {
        let mut q = self.frames.borrow_mut();
        let f = q.pop_front()?;
        if q.is_empty() && q.capacity() > limits::SESSION_OUTBOX_KEEP_FRAMES {
            *q = VecDeque::new();
        }
        self.bytes.set(self.bytes.get() - f.len());
        Some(f)
    }

    pub fn has_frames(&self) -> bool {
        !self.frames.borrow().is_empty()
    }
}

/// The subscription table in force, swapped in one step by a deployment ([`Hub::apply_group`]).
/// Each work item is routed by the table it got from [`RouterSlot::get`], never by a mix.
pub struct RouterSlot(RefCell<Rc<Router>>);

impl RouterSlot {
    /// The table in force now.
    pub fn get(&self) -> Rc<Router> {
        self.0.borrow().clone()
    }

    /// See [`Router::may_subscribe`] (on the table in force).
    pub fn may_subscribe(&self, thing_name: &str, filter: &str) -> bool {
        self.get().may_subscribe(thing_name, filter)
    }
}

fn router_for(group: &Group) -> Router {
    let router = Router::new(&group.subscriptions);
    if router.invalid_subjects() > 0 {
        log::warn!(
            "{} subscriptions have an invalid Subject and are ignored",
            router.invalid_subjects()
        );
    }
    router
}

fn devices_of(group: &Group) -> HashMap<String, String> {
    group
        .devices
        .iter()
        .map(|d| (d.certificate_id.to_ascii_lowercase(), d.thing_name.clone()))
        .collect()
}

/// The shared state of the local message path.
pub struct Hub {
    pub router: RouterSlot,
    /// Certificate id → thing name, for the group's devices.
    devices: RefCell<HashMap<String, String>>,
    pub queue: QueueHandle,
    /// Connected devices by client id (= thing name).
    sessions: RefCell<FastMap<String, Rc<Outbox>>>,
    pub stats: BrokerStats,
    pub max_connections: usize,
    cloud: RefCell<Option<Rc<dyn CloudSink>>>,
    /// The shadow service, once plugged in (`set_shadow_sink`).
    shadow: RefCell<Option<Rc<dyn LocalSink>>>,
    /// The Lambda runner, once plugged in (`set_function_sink`).
    functions: RefCell<Option<Rc<dyn LocalSink>>>,
}

impl Hub {
    pub fn new(group: &Group, queue: QueueHandle, max_connections: usize) -> Rc<Hub> {
        Rc::new(Hub {
            router: RouterSlot(RefCell::new(Rc::new(router_for(group)))),
            devices: RefCell::new(devices_of(group)),
            queue,
            sessions: RefCell::new(FastMap::default()),
            stats: BrokerStats::default(),
            max_connections,
            cloud: RefCell::new(None),
            shadow: RefCell::new(None),
            functions: RefCell::new(None),
        })
    }

    /// Plugs in the cloud link: from now on messages routed to `cloud` go to `sink`.
    pub fn set_cloud_sink(&self, sink: Rc<dyn CloudSink>) {
        *self.cloud.borrow_mut() = Some(sink);
    }

    /// Plugs in the shadow service: messages routed to `GGShadowService` go to `sink`.
    pub fn set_shadow_sink(&self, sink: Rc<dyn LocalSink>) {
        *self.shadow.borrow_mut() = Some(sink);
    }

    /// Plugs in the Lambda runner: messages routed to a function ARN go to `sink`.
    pub fn set_function_sink(&self, sink: Rc<dyn LocalSink>) {
        *self.functions.borrow_mut() = Some(sink);
    }

    /// The thing name of the group device with this certificate id.
    pub fn device_for_certificate(&self, certificate_id: &str) -> Option<String> {
        self.devices.borrow().get(certificate_id).cloned()
    }

    /// A deployment: the new group's subscription table and devices take over in one step.
    /// Connected devices that are no longer in the group, or whose certificate changed, are
    /// told to close; the others stay connected (their granted filters still need a route to
    /// deliver anything). Returns the client ids told to close.
    pub fn apply_group(&self, group: &Group) -> Vec<String> {
        let devices = devices_of(group);
        let keep: HashMap<&str, &str> = devices
            .iter()
            .map(|(cert, name)| (name.as_str(), cert.as_str()))
            .collect();
        let old = self.devices.borrow().clone();
        let mut dropped = Vec::new();
        for (name, ob) in self.sessions.borrow().iter() {
            let old_cert = old
                .iter()
                .find(|(_, n)| *n == name)
                .map(|(c, _)| c.as_str());
            if keep.get(name.as_str()).copied() != old_cert || old_cert.is_none() {
                ob.replaced.set(true);
                ob.wake.notify();
                dropped.push(name.clone());
            }
        }
        // The old table goes before the new one is built (unless a routing step still holds
        // it): the largest group's table is ~10 MB, and no message is routed meanwhile.
        *self.router.0.borrow_mut() = Rc::default();
        *self.router.0.borrow_mut() = Rc::new(router_for(group));
        *self.devices.borrow_mut() = devices;
        dropped.sort();
        dropped
    }

    /// Registers a connected device; a previous connection with the same client id is told to
    /// close (MQTT 3.1.1 §3.1.4-2).
    pub fn register(&self, outbox: Rc<Outbox>) {
        if let Some(old) = self
            .sessions
            .borrow_mut()
            .insert(outbox.thing_name.clone(), outbox)
        {
            old.replaced.set(true);
            old.wake.notify();
        }
    }

    /// Forgets a device's connection, unless a newer one replaced it.
    pub fn unregister(&self, outbox: &Rc<Outbox>) {
        let mut s = self.sessions.borrow_mut();
        if s.get(&outbox.thing_name)
            .is_some_and(|o| Rc::ptr_eq(o, outbox))
        {
            s.remove(&outbox.thing_name);
        }
    }

    /// Client ids of the connected devices, sorted.
    pub fn connected_devices(&self) -> Vec<String> {
        let mut v: Vec<String> = self.sessions.borrow().keys().cloned().collect();
        v.sort();
        v
    }

    /// True when every target `topic` from `source` routes to could take one more message now
    /// (device outboxes, local sinks; the cloud spool always takes one by dropping its oldest).
    /// For `queueFullPolicy: AllOrError` publishes from Lambda functions.
    fn targets_have_room(&self, source: &Endpoint, topic: &str) -> bool {
        let mut scratch = Vec::new();
        let router = self.router.get();
        router.route_from(source, topic, &mut scratch);
        scratch.iter().all(|&t| match router.endpoint(t) {
            Some(Endpoint::Device(name)) => self.sessions.borrow().get(name).is_none_or(|ob| {
                ob.frames.borrow().len() < limits::SESSION_OUTBOUND_MESSAGES
                    && ob.bytes.get() < limits::SESSION_OUTBOUND_BYTES
            }),
            Some(t @ Endpoint::Function(_)) => {
                let sink = self.functions.borrow().clone();
                sink.is_none_or(|s| s.has_room(t))
            }
            Some(t @ Endpoint::ShadowService) => {
                let sink = self.shadow.borrow().clone();
                sink.is_none_or(|s| s.has_room(t))
            }
            _ => true,
        })
    }

    /// A Lambda function's `queueFullPolicy: AllOrError` publish: delivered now to every
    /// target if each has room, else to none (`false`). Checked and delivered in one step (one
    /// thread), so nothing queued meanwhile can take the room the check saw.
    pub fn deliver_all_or_none(&self, item: &WorkItem) -> bool {
        if !self.targets_have_room(&item.source, &item.topic) {
            return false;
        }
        let mut scratch = Vec::new();
        self.deliver(item, &mut scratch);
        true
    }

    /// Routes one work item to its targets (the dispatcher's step).
    pub fn deliver(&self, item: &WorkItem, scratch: &mut Vec<EndpointId>) {
        let router = self.router.get();
        router.route_from(&item.source, &item.topic, scratch);
        if scratch.is_empty() {
            bump(&self.stats.dropped_no_route);
            log::debug!(
                "no subscription routes {:?} from {:?}: dropped",
                item.topic,
                item.source
            );
            return;
        }
        // The frame is encoded once; the last device target gets it, the ones before a clone
        // (the first clone of a buffer allocates its shared header: a lone subscriber's frame
        // is never shared, so costs one allocation).
        let mut frame: Option<Bytes> = None;
        let mut last: Option<Rc<Outbox>> = None;
        for &t in scratch.iter() {
            match router.endpoint(t) {
                Some(Endpoint::Device(name)) => {
                    let Some(ob) = self.sessions.borrow().get(name).cloned() else {
                        continue; // not connected: local delivery is one attempt (guide §6.1)
                    };
                    if !ob.wants(&item.topic) {
                        continue;
                    }
                    if frame.is_none() {
                        frame = encode_publish(&item.topic, &item.payload);
                        if frame.is_none() {
                            return;
                        }
                    }
                    if let (Some(prev), Some(f)) = (last.replace(ob), &frame) {
                        self.offer_frame(&prev, f.clone(), &item.topic);
                    }
                }
                Some(Endpoint::Cloud) => {
                    let sink = self.cloud.borrow().clone();
                    let sent = sink.is_some_and(|s| s.send(&item.topic, &item.payload));
                    if !sent {
                        bump(&self.stats.dropped_cloud);
                        log::debug!(
                            "cloud link unavailable: dropped a message on {:?}",
                            item.topic
                        );
                    }
                }
                Some(target @ Endpoint::ShadowService) => {
                    let sink = self.shadow.borrow().clone();
                    if let Some(sink) = sink {
                        sink.deliver(target, &item.source, &item.topic, &item.payload);
                        continue;
                    }
                    bump(&self.stats.dropped_shadow);
                    // Once at info, then at debug: a chatty device must not flood the log.
                    let level = if self.stats.dropped_shadow.get() == 1 {
                        log::Level::Info
                    } else {
                        log::Level::Debug
                    };
                    log::log!(
                        level,
                        "shadow request on {:?} from {:?} dropped: the local shadow service is not built yet",
                        item.topic,
                        item.source
                    );
                }
                Some(target @ Endpoint::Function(_)) => {
                    let sink = self.functions.borrow().clone();
                    if let Some(sink) = sink {
                        sink.deliver(target, &item.source, &item.topic, &item.payload);
                        continue;
                    }
                    bump(&self.stats.dropped_no_local_target);
                    log::debug!(
                        "message on {:?} for {:?} dropped: the Lambda runner is not built yet",
                        item.topic,
                        target
                    );
                }
                Some(other) => {
                    bump(&self.stats.dropped_no_local_target);
                    log::debug!(
                        "message on {:?} for {:?} dropped: connector targets are not built yet",
                        item.topic,
                        other
                    );
                }
                None => {}
            }
        }
        if let (Some(ob), Some(f)) = (last, frame) {
            self.offer_frame(&ob, f, &item.topic);
        }
    }

    /// One frame into one device's outbox, counted as delivered or dropped (outbox full).
    fn offer_frame(&self, ob: &Outbox, frame: Bytes, topic_name: &str) {
        if ob.offer(frame) {
            bump(&self.stats.delivered);
        } else {
            bump(&self.stats.dropped_slow_subscriber);
            log::debug!(
                "{} is not reading: dropped a message on {:?}",
                ob.thing_name,
                topic_name
            );
        }
    }
}

/// Encodes a local delivery: QoS 0, retain clear (guide §6.1: one attempt), as one buffer of
/// exactly its size (MQTT 3.1.1 §3.3: fixed header 0x30, remaining length, topic, payload).
/// One allocation; `None` (logged) when the topic or the packet is too long for MQTT, which
/// the limits on the way in already prevent.
fn encode_publish(topic_name: &str, payload: &[u8]) -> Option<Bytes> {
    let remaining = 2 + topic_name.len() + payload.len();
    if topic_name.len() > usize::from(u16::MAX) || remaining > MQTT_MAX_REMAINING_LENGTH {
        log::warn!(
            "cannot encode a message on {topic_name:?}: {remaining} bytes is too long for MQTT"
        );
        return None;
    }
    let (mut len, mut n, mut x) = ([0u8; 4], 0, remaining);
    loop {
        len[n] = (x % 128) as u8 | if x >= 128 { 0x80 } else { 0 };
        n += 1;
        x /= 128;
        if x == 0 {
            break;
        }
    }
    let mut v = Vec::with_capacity(1 + n + remaining);
    v.push(0x30);
    v.extend_from_slice(&len[..n]);
    v.extend_from_slice(&(topic_name.len() as u16).to_be_bytes());
    v.extend_from_slice(topic_name.as_bytes());
    v.extend_from_slice(payload);
    // Length equals capacity: `Bytes` takes the buffer over without a header allocation.
    Some(Bytes::from(v))
}

/// MQTT 3.1.1 §2.2.3: the largest remaining length four bytes can encode.
const MQTT_MAX_REMAINING_LENGTH: usize = 268_435_455;

/// Drains the work queue forever, delivering each item; yields every
/// [`limits::DISPATCH_PER_WAKE`] items so producers and connections get their turn. A round
/// that emptied the queue does not yield: the next `pop` waits anyway, and a yield would cost
/// the dispatcher a second poll per message at low rates.
pub async fn run_dispatcher(hub: Rc<Hub>) {
    let mut scratch = Vec::with_capacity(16);
    loop {
        let item = hub.queue.pop().await;
        hub.deliver(&item, &mut scratch);
        let mut budget_used = true;
        for _ in 1..limits::DISPATCH_PER_WAKE {
            match hub.queue.try_pop() {
                Some(item) => hub.deliver(&item, &mut scratch),
                None => {
                    budget_used = false;
                    break;
                }
            }
        }
        if budget_used {
            futures_lite::future::yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Subscription;
    use crate::workq::SharedQueue;

    fn dev(n: &str) -> Endpoint {
        Endpoint::Device(n.into())
    }

    fn hub() -> Rc<Hub> {
        let sub = |s: Endpoint, subject: &str, t: Endpoint| Subscription {
            id: String::new(),
            source: s,
            subject: subject.into(),
            target: t,
        };
        let group = Group {
            subscriptions: vec![
                sub(dev("A"), "t/#", dev("B")),
                sub(dev("A"), "t/#", dev("C")),
                sub(dev("A"), "up", Endpoint::Cloud),
                sub(
                    dev("A"),
                    "$aws/things/A/shadow/update",
                    Endpoint::ShadowService,
                ),
            ],
            ..Group::default()
        };
        Hub::new(&group, SharedQueue::new(8, 1 << 20), 10)
    }

    fn item(topic: &str, n: usize) -> WorkItem {
        WorkItem {
            source: dev("A"),
            topic: topic.into(),
            payload: Bytes::from(vec![7u8; n]),
        }
    }

    struct Sink(RefCell<Vec<String>>);
    impl CloudSink for Sink {
        fn send(&self, topic: &str, _payload: &Bytes) -> bool {
            self.0.borrow_mut().push(topic.into());
            true
        }
    }

    #[test]
    fn delivers_one_shared_frame_to_every_subscribed_target() {
        let h = hub();
        let (b, c) = (Rc::new(Outbox::new("B")), Rc::new(Outbox::new("C")));
        h.register(b.clone());
        h.register(c.clone());
        assert!(b.add_filter("t/+"));
        // C is connected but has not subscribed: nothing for C.
        let mut scratch = Vec::new();
        h.deliver(&item("t/x", 3), &mut scratch);
        let f = b.take().expect("B gets the message");
        assert!(b.take().is_none() && !c.has_frames());
        // A QoS 0 PUBLISH: 0x30, remaining length, topic, payload.
        assert_eq!(&f[..], &[0x30, 8, 0, 3, b't', b'/', b'x', 7, 7, 7]);
        // Not routed / routed to targets not built / not connected.
        h.deliver(&item("other", 1), &mut scratch);
        h.deliver(&item("$aws/things/A/shadow/update", 1), &mut scratch);
        h.deliver(&item("up", 1), &mut scratch);
        let s = &h.stats;
        assert_eq!(
            (
                s.dropped_no_route.get(),
                s.dropped_shadow.get(),
                s.dropped_cloud.get()
            ),
            (1, 1, 1)
        );
        let sink = Rc::new(Sink(RefCell::new(Vec::new())));
        h.set_cloud_sink(sink.clone());
        h.deliver(&item("up", 1), &mut scratch);
        assert_eq!(*sink.0.borrow(), vec!["up".to_string()]);
    }

    #[test]
    fn a_full_outbox_drops_for_that_device_only() {
        let h = hub();
        let (b, c) = (Rc::new(Outbox::new("B")), Rc::new(Outbox::new("C")));
        for o in [&b, &c] {
            h.register(o.clone());
            o.add_filter("t/#");
        }
        let mut scratch = Vec::new();
        let n = limits::SESSION_OUTBOUND_MESSAGES + 10;
        for _ in 0..n {
            h.deliver(&item("t/x", 1), &mut scratch);
            // C keeps reading, B never does.
            assert!(c.take().is_some());
        }
        assert_eq!(h.stats.dropped_slow_subscriber.get(), 10);
        let mut queued = 0;
        while b.take().is_some() {
            queued += 1;
        }
        assert_eq!(queued, limits::SESSION_OUTBOUND_MESSAGES);
        // The byte bound holds too: two frames of a third of it fit, the next two do not, for
        // B and C alike (neither reads now).
        let big = limits::SESSION_OUTBOUND_BYTES / 3;
        for _ in 0..4 {
            h.deliver(&item("t/x", big), &mut scratch);
        }
        assert_eq!(h.stats.dropped_slow_subscriber.get(), 10 + 2 * 2);
    }

    #[test]
    fn a_new_connection_with_the_same_client_id_replaces_the_old() {
        let h = hub();
        let (old, new) = (Rc::new(Outbox::new("B")), Rc::new(Outbox::new("B")));
        h.register(old.clone());
        h.register(new.clone());
        assert!(old.replaced.get() && !new.replaced.get());
        // The old connection's cleanup must not remove the new registration.
        h.unregister(&old);
        assert_eq!(h.connected_devices(), vec!["B".to_string()]);
        h.unregister(&new);
        assert!(h.connected_devices().is_empty());
    }

    #[test]
    fn a_group_swap_keeps_kept_devices_and_drops_removed_ones() {
        let device = |name: &str, cert: &str| crate::config::Device {
            id: name.into(),
            thing_arn: format!("arn:aws:iot:r:1:thing/{name}"),
            thing_name: name.into(),
            certificate_arn: String::new(),
            certificate_id: cert.into(),
            sync_shadow: false,
        };
        let sub = |s: &str, subject: &str, t: &str| Subscription {
            id: String::new(),
            source: dev(s),
            subject: subject.into(),
            target: dev(t),
        };
        let old = Group {
            devices: vec![device("A", "aa"), device("B", "bb"), device("C", "cc")],
            subscriptions: vec![sub("A", "old/#", "B")],
            ..Group::default()
        };
        let h = Hub::new(&old, SharedQueue::new(8, 1 << 20), 10);
        let obs: Vec<Rc<Outbox>> = ["A", "B", "C"]
            .iter()
            .map(|n| Rc::new(Outbox::new(n)))
            .collect();
        for o in &obs {
            h.register(o.clone());
            o.add_filter("#");
        }
        // B kept, C removed, A re-certified.
        let new = Group {
            devices: vec![device("A", "a2"), device("B", "bb")],
            subscriptions: vec![sub("A", "new/#", "B")],
            ..Group::default()
        };
        assert_eq!(h.apply_group(&new), vec!["A".to_string(), "C".to_string()]);
        assert!(obs[0].replaced.get() && !obs[1].replaced.get() && obs[2].replaced.get());
        assert_eq!(h.device_for_certificate("cc"), None);
        assert_eq!(h.device_for_certificate("a2").as_deref(), Some("A"));
        let mut scratch = Vec::new();
        h.deliver(&item("old/x", 1), &mut scratch);
        assert!(!obs[1].has_frames(), "the old route is gone");
        h.deliver(&item("new/x", 1), &mut scratch);
        assert!(
            obs[1].take().is_some(),
            "the new route delivers to the kept device"
        );
    }

    #[test]
    fn the_hand_encoded_publish_reads_back_whole() {
        use mqttbytes::v4::{self, Packet};
        // Remaining lengths of 1, 2, 3 bytes, at and around each boundary.
        for n in [0, 1, 122, 123, 124, 16_378, 16_379, 16_380, 200_000] {
            let f = encode_publish("a/b", &vec![5u8; n]).expect("encodes");
            let mut b = bytes::BytesMut::from(&f[..]);
            match v4::read(&mut b, 1 << 20) {
                Ok(Packet::Publish(p)) => {
                    assert_eq!((p.topic.as_str(), p.payload.len()), ("a/b", n));
                    assert!(p.qos == mqttbytes::QoS::AtMostOnce && !p.retain && !p.dup);
                }
                other => panic!("{n}: {other:?}"),
            }
            assert!(b.is_empty(), "{n}: {} bytes left over", b.len());
        }
    }

    #[test]
    fn filters_are_bounded_per_device() {
        let o = Outbox::new("B");
        for i in 0..limits::SESSION_MAX_FILTERS {
            assert!(o.add_filter(&format!("f/{i}")));
        }
        assert!(o.add_filter("f/0"), "re-subscribing is not a new filter");
        assert!(!o.add_filter("f/new"));
        o.remove_filter("f/0");
        assert!(o.add_filter("f/new"));
    }
}
