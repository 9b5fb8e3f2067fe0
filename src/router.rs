//! Managed subscriptions (guide: "Managed Subscriptions in the MQTT Messaging Workflow"): the
//! group's `(Source, Subject, Target)` table and the two questions the broker asks of it.
//!
//! * [`Router::route`]: a message from `source` on `topic` goes to which targets? One topic trie
//!   per source, so the cost grows with the topic's depth and the number of matching branches,
//!   not with the number of subscriptions.
//! * [`Router::may_subscribe`]: may a device SUBSCRIBE to a filter? Only when some subscription
//!   targets that device with a Subject the filter [`overlaps`] (defined there).
//!
//! Endpoints are interned to small integers ([`EndpointId`]) so the hot path compares numbers,
//! and sessions and the dispatcher can key their tables by id. Sans-IO, no allocation on `route`
//! beyond the caller's reusable output vector.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::config::{Endpoint, Subscription};
use crate::topic;

/// An endpoint of the group, interned by the [`Router`] that issued it.
pub type EndpointId = u32;

/// A map on the message path, looked up once or more per message: FxHash (the multiply-rotate
/// hash rustc uses) instead of std's SipHash, which cost about 1,200 instructions per routed
/// message (ARCHITECTURE.md, "The path of a message, per message"). Safe from hash flooding
/// here: the keys are inserted from group.json (subjects, endpoints) or by authenticated
/// devices (their own thing name); what a device sends is only looked up.
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// See [`FastMap`].
#[derive(Debug, Default, Clone, Copy)]
pub struct FxHasher(u64);

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(i.into());
    }

    fn write_u32(&mut self, i: u32) {
        self.add(i.into());
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// One node of a source's topic trie. Children are indices into `Router::nodes`.
#[derive(Debug, Default)]
struct Node {
    /// Children by literal level.
    literal: FastMap<Box<str>, u32>,
    /// The child for a `+` level.
    plus: Option<u32>,
    /// Targets of subjects ending here (`a/b` ends at the `b` node).
    exact: Vec<EndpointId>,
    /// Targets of subjects ending with `/#` here (`a/#` is stored on the `a` node): they match
    /// this level and everything below it.
    hash: Vec<EndpointId>,
}

/// The routing table of one deployed group.
#[derive(Debug, Default)]
pub struct Router {
    endpoints: Vec<Endpoint>,
    ids: FastMap<Endpoint, EndpointId>,
    /// Trie root of every endpoint that is the Source of at least one subscription.
    roots: FastMap<EndpointId, u32>,
    nodes: Vec<Node>,
    /// Per target device: the Subjects routed to it (for `may_subscribe`; checked only at
    /// SUBSCRIBE time, so a plain list).
    subjects_to: HashMap<EndpointId, Vec<Box<str>>>,
    /// Subscriptions skipped because their Subject is not a valid MQTT filter.
    invalid: usize,
}

impl Router {
    /// Builds the table. Subscriptions whose Subject is not a valid topic filter are skipped
    /// (config validation refuses them; this keeps the router total) and counted in
    /// [`Router::invalid_subjects`].
    pub fn new(subscriptions: &[Subscription]) -> Router {
        let mut r = Router::default();
        for s in subscriptions {
            if topic::validate_topic_filter(&s.subject).is_err() {
                r.invalid += 1;
                continue;
            }
            let src = r.intern(&s.source);
            let dst = r.intern(&s.target);
            let root = match r.roots.get(&src) {
                Some(&n) => n,
                None => {
                    let n = r.new_node();
                    r.roots.insert(src, n);
                    n
                }
            };
            r.insert(root, &s.subject, dst);
            if matches!(s.target, Endpoint::Device(_)) {
                r.subjects_to
                    .entry(dst)
                    .or_default()
                    .push(s.subject.as_str().into());
            }
        }
        r
    }

    fn intern(&mut self, e: &Endpoint) -> EndpointId {
        if let Some(&id) = self.ids.get(e) {
            return id;
        }
        let id = self.endpoints.len() as EndpointId;
        self.endpoints.push(e.clone());
        self.ids.insert(e.clone(), id);
        id
    }

    fn new_node(&mut self) -> u32 {
        self.nodes.push(Node::default());
        (self.nodes.len() - 1) as u32
    }

    fn insert(&mut self, root: u32, subject: &str, target: EndpointId) {
        let mut node = root;
        let mut levels = subject.split('/').peekable();
        while let Some(level) = levels.next() {
            if level == "#" {
                push_unique(&mut self.nodes[node as usize].hash, target);
                return;
            }
            let next = if level == "+" {
                self.nodes[node as usize].plus
            } else {
                self.nodes[node as usize].literal.get(level).copied()
            };
            let next = match next {
                Some(n) => n,
                None => {
                    let n = self.new_node();
                    let parent = &mut self.nodes[node as usize];
                    if level == "+" {
                        parent.plus = Some(n);
                    } else {
                        parent.literal.insert(level.into(), n);
                    }
                    n
                }
            };
            node = next;
            if levels.peek().is_none() {
                push_unique(&mut self.nodes[node as usize].exact, target);
            }
        }
    }

    /// The id of an endpoint that appears in some subscription.
    pub fn id(&self, e: &Endpoint) -> Option<EndpointId> {
        self.ids.get(e).copied()
    }

    /// The id of device `thing_name`, when some subscription names it.
    pub fn device_id(&self, thing_name: &str) -> Option<EndpointId> {
        self.id(&Endpoint::Device(thing_name.to_string()))
    }

    /// The endpoint behind an id this router issued.
    pub fn endpoint(&self, id: EndpointId) -> Option<&Endpoint> {
        self.endpoints.get(id as usize)
    }

    /// Number of subscriptions skipped because their Subject is not a valid filter.
    pub fn invalid_subjects(&self) -> usize {
        self.invalid
    }

    /// Replaces `out` with the targets of a message from `source` on topic name `topic`, each
    /// target once, in ascending id order. `topic` must be a valid topic name.
    pub fn route(&self, source: EndpointId, topic: &str, out: &mut Vec<EndpointId>) {
        out.clear();
        let Some(&root) = self.roots.get(&source) else {
            return;
        };
        // MQTT §4.7.2: a leading wildcard never matches a topic starting with `$`.
        let dollar = topic.starts_with('$');
        self.walk(root, topic, true, dollar, out);
        out.sort_unstable();
        out.dedup();
    }

    /// Collects the targets of subjects under `node` that match `rest`, the topic's remaining
    /// levels (at least one). `first`: `node` is the root, where the `$` rule applies.
    fn walk(&self, node: u32, rest: &str, first: bool, dollar: bool, out: &mut Vec<EndpointId>) {
        let n = &self.nodes[node as usize];
        let wild_ok = !(first && dollar);
        // `x/#` matches `x` itself and anything below: `rest` here is at least one level.
        if wild_ok {
            out.extend_from_slice(&n.hash);
        }
        let (level, tail) = match rest.split_once('/') {
            Some((l, t)) => (l, Some(t)),
            None => (rest, None),
        };
        let mut step = |child: u32| match tail {
            Some(t) => self.walk(child, t, false, dollar, out),
            None => {
                let c = &self.nodes[child as usize];
                out.extend_from_slice(&c.exact);
                out.extend_from_slice(&c.hash);
            }
        };
        if let Some(&c) = n.literal.get(level) {
            step(c);
        }
        if wild_ok {
            if let Some(c) = n.plus {
                step(c);
            }
        }
    }

    /// `route` for an endpoint rather than an id; empty when the endpoint is in no subscription.
    pub fn route_from(&self, source: &Endpoint, topic: &str, out: &mut Vec<EndpointId>) {
        match self.id(source) {
            Some(id) => self.route(id, topic, out),
            None => out.clear(),
        }
    }

    /// `true` when device `thing_name` may SUBSCRIBE to topic filter `filter`: some subscription
    /// targets that device with a Subject that [`overlaps`] `filter`. Subscribing never widens
    /// what a device receives — delivery still needs a route — so this is the exact test for
    /// "can anything ever arrive on this filter".
    pub fn may_subscribe(&self, thing_name: &str, filter: &str) -> bool {
        if topic::validate_topic_filter(filter).is_err() {
            return false;
        }
        let Some(id) = self.device_id(thing_name) else {
            return false;
        };
        self.subjects_to
            .get(&id)
            .is_some_and(|subjects| subjects.iter().any(|s| overlaps(filter, s)))
    }
}

fn push_unique(v: &mut Vec<EndpointId>, id: EndpointId) {
    if !v.contains(&id) {
        v.push(id);
    }
}

/// "Covers", as sprig defines it for SUBSCRIBE: filter `a` overlaps filter `b` when at least one
/// topic name matches both (MQTT 3.1.1 matching, incl. `x/#` matching `x`, `+` matching an empty
/// level, and no leading wildcard matching a `$` topic). So `a/b/c` overlaps Subject `a/#`
/// (a device may subscribe to a part of what is routed to it), `#` overlaps `a/b` (a device may
/// subscribe wider; it still receives only what is routed to it), and `a/+/c` overlaps `a/b/#`;
/// `a/b` does not overlap `a/c`, and `#` does not overlap `$aws/things/t/shadow/update`.
/// Both arguments must be valid filters.
pub fn overlaps(a: &str, b: &str) -> bool {
    let a_dollar = a.starts_with('$');
    let b_dollar = b.starts_with('$');
    let a_wild = a.starts_with('+') || a.starts_with('#');
    let b_wild = b.starts_with('+') || b.starts_with('#');
    // Every topic `a` matches starts with `$` (a literal `$...` first level), and `b` starts with
    // a wildcard, which never matches such topics; and the other way round.
    if (a_dollar && b_wild) || (b_dollar && a_wild) {
        return false;
    }
    let mut x = a.split('/');
    let mut y = b.split('/');
    loop {
        match (x.next(), y.next()) {
            (Some("#"), _) | (_, Some("#")) => return true,
            (None, None) => return true,
            // One side is exhausted: the other must continue with `#` (`x/#` matches `x`).
            (None, Some(l)) | (Some(l), None) => return l == "#",
            (Some("+"), Some(_)) | (Some(_), Some("+")) => {}
            (Some(l), Some(m)) if l == m => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(n: &str) -> Endpoint {
        Endpoint::Device(n.into())
    }

    fn sub(source: Endpoint, subject: &str, target: Endpoint) -> Subscription {
        Subscription {
            id: String::new(),
            source,
            subject: subject.into(),
            target,
        }
    }

    fn targets(r: &Router, source: &Endpoint, topic: &str) -> Vec<Endpoint> {
        let mut out = Vec::new();
        r.route_from(source, topic, &mut out);
        let mut v: Vec<Endpoint> = out
            .iter()
            .map(|&id| r.endpoint(id).unwrap().clone())
            .collect();
        v.sort();
        v
    }

    /// The reference: linear scan with `topic::filter_matches`.
    fn linear(subs: &[Subscription], source: &Endpoint, topic: &str) -> Vec<Endpoint> {
        let mut v: Vec<Endpoint> = subs
            .iter()
            .filter(|s| &s.source == source && topic::filter_matches(&s.subject, topic))
            .map(|s| s.target.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    fn group() -> Vec<Subscription> {
        vec![
            sub(dev("A"), "hello/world", dev("B")),
            sub(dev("A"), "hello/world", dev("C")),
            sub(dev("A"), "hello/+", dev("D")),
            sub(dev("A"), "sensors/#", dev("B")),
            sub(dev("A"), "sensors/+/temp", dev("B")),
            sub(dev("A"), "#", Endpoint::Cloud),
            sub(dev("A"), "+/x", dev("E")),
            sub(dev("A"), "/lead", dev("E")),
            sub(dev("A"), "trail/", dev("E")),
            sub(dev("A"), "$aws/things/A/shadow/#", Endpoint::ShadowService),
            sub(dev("B"), "hello/world", dev("A")),
            sub(Endpoint::Cloud, "cmd/+/go", dev("A")),
            sub(Endpoint::Cloud, "cmd/#", Endpoint::Function("arn:f".into())),
            sub(dev("A"), "bad/#/x", dev("B")),
        ]
    }

    #[test]
    fn vectors_agree_with_linear_matching() {
        let subs = group();
        let r = Router::new(&subs);
        assert_eq!(r.invalid_subjects(), 1);
        let valid: Vec<Subscription> = subs
            .into_iter()
            .filter(|s| s.subject != "bad/#/x")
            .collect();
        let topics = [
            "hello/world",
            "hello/there",
            "hello",
            "hello/world/x",
            "sensors",
            "sensors/1/temp",
            "sensors/1/hum",
            "sensors/1/temp/x",
            "a/x",
            "/x",
            "x",
            "/lead",
            "lead",
            "trail/",
            "trail",
            "$aws/things/A/shadow/update",
            "$aws/things/B/shadow/update",
            "$SYS/x",
            "cmd/7/go",
            "cmd",
            "cmd/7/stop",
            "/",
            "//",
        ];
        for source in [dev("A"), dev("B"), dev("Z"), Endpoint::Cloud] {
            for t in topics {
                assert_eq!(
                    targets(&r, &source, t),
                    linear(&valid, &source, t),
                    "{source:?} {t}"
                );
            }
        }
    }

    #[test]
    fn explicit_vectors() {
        let r = Router::new(&group());
        let a = dev("A");
        assert_eq!(
            targets(&r, &a, "hello/world"),
            vec![Endpoint::Cloud, dev("B"), dev("C"), dev("D")]
        );
        // `sensors/#` matches its parent level; B matched twice is delivered once.
        assert_eq!(targets(&r, &a, "sensors"), vec![Endpoint::Cloud, dev("B")]);
        assert_eq!(
            targets(&r, &a, "sensors/1/temp"),
            vec![Endpoint::Cloud, dev("B")]
        );
        // `#` and `+/x` do not match `$` topics; the explicit shadow subject does.
        assert_eq!(
            targets(&r, &a, "$aws/things/A/shadow/update"),
            vec![Endpoint::ShadowService]
        );
        assert_eq!(targets(&r, &a, "$x"), vec![]);
        // `+` matches an empty level.
        assert_eq!(targets(&r, &a, "/x"), vec![Endpoint::Cloud, dev("E")]);
        // No subscription from this source: nothing.
        assert_eq!(targets(&r, &dev("Q"), "hello/world"), vec![]);
        assert_eq!(targets(&r, &dev("B"), "hello/world"), vec![dev("A")]);
        assert_eq!(
            targets(&r, &Endpoint::Cloud, "cmd/1/go"),
            vec![dev("A"), Endpoint::Function("arn:f".into())]
        );
    }

    #[test]
    fn overlap_vectors() {
        let yes = [
            ("a/b", "a/b"),
            ("a/b/c", "a/#"),
            ("a/#", "a/b/c"),
            ("a", "a/#"),
            ("#", "a/b"),
            ("+/b", "a/+"),
            ("a/+/c", "a/b/#"),
            ("+", "a"),
            ("+/+", "/"),
            ("$aws/things/t/shadow/#", "$aws/+/t/shadow/update"),
            ("$aws/things/t/shadow/update", "$aws/things/t/shadow/update"),
            ("+", "+"),
            ("#", "#"),
        ];
        let no = [
            ("a/b", "a/c"),
            ("a/b", "a/b/c"),
            ("a/+", "a"),
            ("a/+", "a/b/c"),
            ("+", "a/b"),
            ("#", "$aws/things/t/shadow/update"),
            ("+/things/t/shadow/update", "$aws/things/t/shadow/update"),
            ("b/#", "a/#"),
            ("a//b", "a/b"),
        ];
        for (a, b) in yes {
            assert!(overlaps(a, b), "{a} ~ {b}");
            assert!(overlaps(b, a), "{b} ~ {a}");
        }
        for (a, b) in no {
            assert!(!overlaps(a, b), "{a} !~ {b}");
            assert!(!overlaps(b, a), "{b} !~ {a}");
        }
    }

    /// `overlaps` agrees with brute force over a small universe of topics.
    #[test]
    fn overlap_agrees_with_brute_force() {
        let filters = [
            "#", "+", "a", "a/#", "a/+", "+/b", "a/b", "+/+", "a/b/#", "+/#", "$s/#", "$s", "$s/+",
            "/", "/+", "+/", "a/+/c", "a/b/c",
        ];
        // Every topic of 1 to 4 levels over a small alphabet (incl. empty levels and `$`).
        let alphabet = ["a", "b", "c", "", "$s"];
        let mut topics: Vec<String> = alphabet.iter().map(|l| l.to_string()).collect();
        let mut last = topics.clone();
        for _ in 1..4 {
            last = last
                .iter()
                .flat_map(|t| alphabet.iter().map(move |l| format!("{t}/{l}")))
                .collect();
            topics.extend(last.iter().cloned());
        }
        topics.retain(|t| !t.is_empty());
        for f in filters {
            for g in filters {
                let brute = topics
                    .iter()
                    .any(|t| topic::filter_matches(f, t) && topic::filter_matches(g, t));
                assert_eq!(overlaps(f, g), brute, "{f} vs {g}");
            }
        }
    }

    #[test]
    fn may_subscribe_follows_subjects_routed_to_the_device() {
        let r = Router::new(&group());
        assert!(r.may_subscribe("B", "hello/world"));
        assert!(r.may_subscribe("B", "sensors/3/temp"));
        assert!(r.may_subscribe("B", "#"));
        assert!(r.may_subscribe("D", "hello/+"));
        assert!(r.may_subscribe("D", "hello/x"));
        assert!(!r.may_subscribe("D", "hello/x/y"));
        assert!(!r.may_subscribe("B", "other/topic"));
        // A is only a target from B and the cloud.
        assert!(r.may_subscribe("A", "cmd/5/go"));
        assert!(!r.may_subscribe("A", "cmd/5/stop"));
        // Unknown device, invalid filter.
        assert!(!r.may_subscribe("Q", "#"));
        assert!(!r.may_subscribe("B", "a/#/b"));
        assert!(!r.may_subscribe("B", ""));
    }

    /// The group limit: 10,000 subscriptions among 200 devices, checked against linear matching.
    #[test]
    fn ten_thousand_subscriptions() {
        let mut subs = Vec::new();
        for i in 0..10_000u32 {
            let src = dev(&format!("d{}", i % 200));
            let dst = dev(&format!("d{}", (i * 7 + 3) % 200));
            let subject = match i % 5 {
                0 => format!("site/{}/line/{}/temp", i % 13, i % 17),
                1 => format!("site/{}/+/{}/#", i % 13, i % 17),
                2 => format!("site/+/line/{}", i % 17),
                3 => format!("alerts/{}", i),
                _ => "site/#".to_string(),
            };
            subs.push(sub(src, &subject, dst));
        }
        let r = Router::new(&subs);
        let mut checked = 0;
        for s in 0..200u32 {
            let source = dev(&format!("d{s}"));
            for t in [
                format!("site/{}/line/{}/temp", s % 13, s % 17),
                format!("site/{}/line/{}", s % 13, s % 17),
                format!("alerts/{s}"),
                "site".to_string(),
                "nothing/here".to_string(),
            ] {
                let got = targets(&r, &source, &t);
                assert_eq!(got, linear(&subs, &source, &t), "{source:?} {t}");
                checked += got.len();
            }
        }
        assert!(
            checked > 200,
            "the table must produce real matches, got {checked}"
        );
    }
}
