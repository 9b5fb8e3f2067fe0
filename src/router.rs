//! Managed subscriptions (guide: "Managed Subscriptions in the MQTT Messaging Workflow"): the
//! group's `(Source, Subject, Target)` table and the two questions the broker asks of it.
//!
//! * [`Router::route`]: a message from `source` on `topic` goes to which targets? One topic trie
//!   per source, so the cost grows with the topic's depth and the number of matching branches,
//!   not with the number of subscriptions. The tries are frozen into flat arrays when the table
//!   is built (16-byte nodes, each distinct level string once, children found by binary
//!   search): the largest group's table is ≈0.7 MB instead of ≈9.5 MB of hash-map nodes.
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

/// The label id of a `+` level. Literal labels start at [`FIRST_LITERAL`], so a node's `+`
/// child, when it has one, is its first child.
const PLUS: u32 = 0;
/// The label id of a `#` level (only ever last: it is the node's `hash` targets, not a child).
const HASH: u32 = 1;
const FIRST_LITERAL: u32 = 2;
/// `roots` entry of an endpoint that is the Source of no subscription.
const NO_ROOT: u32 = u32::MAX;

/// One node of the frozen tries, 16 bytes. Nodes are laid out breadth first, so the children
/// of a node, its exact targets and its hash targets are each a contiguous range that ends
/// where the next node's begins (a sentinel node closes the last ranges).
#[derive(Debug, Default, Clone, Copy)]
struct Node {
    /// Label of the level that leads here (unused for roots).
    label: u32,
    /// First child in `Router::nodes`; children are sorted by label.
    children: u32,
    /// First of this node's targets in `Router::targets`: `exact` targets (subjects ending
    /// here: `a/b` ends at the `b` node), then `hash` targets (subjects ending with `/#` here:
    /// `a/#` is on the `a` node; they match this level and everything below it).
    exact: u32,
    hash: u32,
}

/// The routing table of one deployed group, frozen: built once by [`Router::new`], then only
/// read. One topic trie per Source, all of them in flat arrays (ARCHITECTURE.md, "The routing
/// table"): nodes of 16 bytes, each distinct level string stored once (`labels`), targets in
/// one vector, and the Subjects each device may receive in one string.
#[derive(Debug, Default)]
pub struct Router {
    endpoints: Vec<Endpoint>,
    ids: FastMap<Endpoint, EndpointId>,
    /// Every distinct literal level of the Subjects, each once, in string order: label id `l`
    /// (from [`FIRST_LITERAL`]) is `labels.get(l - FIRST_LITERAL)`, in [`label_order`], so
    /// children sorted by label id are in that order of their level's text too.
    labels: Strings,
    /// Per endpoint id: its trie root in `nodes`, or [`NO_ROOT`].
    roots: Vec<u32>,
    /// Every trie's nodes, breadth first, and a sentinel.
    nodes: Vec<Node>,
    targets: Vec<EndpointId>,
    /// The distinct Subjects routed to devices.
    subjects: Strings,
    /// Per endpoint id `i`: its Subjects (for `may_subscribe`) are
    /// `subject_ids[subjects_to[i]..subjects_to[i + 1]]`.
    subjects_to: Vec<u32>,
    subject_ids: Vec<u32>,
    /// Subscriptions skipped because their Subject is not a valid MQTT filter.
    invalid: usize,
}

/// A subscription while the table is built: its levels as label ids
/// (`levels[from..to]` of [`Router::new`]'s flat vector).
#[derive(Clone, Copy)]
struct Entry {
    source: EndpointId,
    target: EndpointId,
    from: u32,
    to: u32,
}

impl Router {
    /// Builds the table. Subscriptions whose Subject is not a valid topic filter are skipped
    /// (config validation refuses them; this keeps the router total) and counted in
    /// [`Router::invalid_subjects`].
    ///
    /// Built without a node per level on the heap: every Subject is turned into label ids,
    /// the subscriptions are sorted by (Source, levels, Target), and the tries are laid out
    /// breadth first from that order; what is kept is sized exactly.
    pub fn new(subscriptions: &[Subscription]) -> Router {
        let mut r = Router::default();
        let mut levels: Vec<u32> = Vec::new();
        let mut entries: Vec<Entry> = Vec::with_capacity(subscriptions.len());
        // Level string → provisional label id, Subject string → subject id; borrowed from
        // `subscriptions` while building.
        let mut label_id: FastMap<&str, u32> = FastMap::default();
        let mut subject_id: FastMap<&str, u32> = FastMap::default();
        let mut device_subjects: Vec<(EndpointId, u32)> = Vec::new();
        for s in subscriptions {
            if topic::validate_topic_filter(&s.subject).is_err() {
                r.invalid += 1;
                continue;
            }
            let source = r.intern(&s.source);
            let target = r.intern(&s.target);
            let from = levels.len() as u32;
            for level in s.subject.split('/') {
                let label = match level {
                    "+" => PLUS,
                    "#" => HASH,
                    _ => {
                        let next = FIRST_LITERAL + label_id.len() as u32;
                        *label_id.entry(level).or_insert(next)
                    }
                };
                levels.push(label);
            }
            let to = levels.len() as u32;
            entries.push(Entry {
                source,
                target,
                from,
                to,
            });
            if matches!(s.target, Endpoint::Device(_)) {
                let next = subject_id.len() as u32;
                let id = *subject_id.entry(s.subject.as_str()).or_insert_with(|| {
                    r.subjects.push(&s.subject);
                    next
                });
                device_subjects.push((target, id));
            }
        }
        drop(subject_id);
        r.subjects.shrink_to_fit();
        // Label ids in `label_order` of the labels' text, so a node's children (sorted by id) can
        // be searched by a topic's level.
        let mut by_text: Vec<(&str, u32)> = label_id.into_iter().collect();
        by_text.sort_unstable_by(|a, b| label_order(a.0.as_bytes(), b.0.as_bytes()));
        let mut rank = vec![0u32; by_text.len()];
        for (i, &(text, provisional)) in by_text.iter().enumerate() {
            rank[(provisional - FIRST_LITERAL) as usize] = FIRST_LITERAL + i as u32;
            r.labels.push(text);
        }
        drop(by_text);
        r.labels.shrink_to_fit();
        for l in levels.iter_mut().filter(|l| **l >= FIRST_LITERAL) {
            *l = rank[(*l - FIRST_LITERAL) as usize];
        }
        drop(rank);
        r.freeze_subjects(device_subjects);
        r.freeze_tries(&levels, entries);
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

    /// `subjects_to` / `subject_ids` from (target, subject id) pairs.
    fn freeze_subjects(&mut self, mut pairs: Vec<(EndpointId, u32)>) {
        pairs.sort_unstable();
        pairs.dedup();
        self.subject_ids = pairs.iter().map(|&(_, s)| s).collect();
        self.subjects_to = Vec::with_capacity(self.endpoints.len() + 1);
        let mut at = 0;
        for id in 0..=self.endpoints.len() as EndpointId {
            self.subjects_to.push(at as u32);
            while at < pairs.len() && pairs[at].0 == id {
                at += 1;
            }
        }
    }

    /// Lays the tries out breadth first from the subscriptions sorted by (Source, levels,
    /// Target): the subscriptions under a node are a contiguous run of `entries`, split by
    /// their next level into the node's children.
    fn freeze_tries(&mut self, levels: &[u32], mut entries: Vec<Entry>) {
        let lv = |e: &Entry| &levels[e.from as usize..e.to as usize];
        entries
            .sort_unstable_by(|a, b| (a.source, lv(a), a.target).cmp(&(b.source, lv(b), b.target)));
        // A node per distinct (Source, prefix of a Subject) at most: sized for that, trimmed.
        let sources = entries
            .windows(2)
            .filter(|w| w[0].source != w[1].source)
            .count()
            + usize::from(!entries.is_empty());
        let bound = sources + levels.len() + 1;
        let mut nodes: Vec<Node> = Vec::with_capacity(bound);
        // Per node: the run of `entries` under it and its depth, until it is laid out.
        let mut runs: Vec<(u32, u32, u32)> = Vec::with_capacity(bound);
        self.roots = vec![NO_ROOT; self.endpoints.len()];
        let mut start = 0;
        while start < entries.len() {
            let src = entries[start].source;
            let end = start + entries[start..].partition_point(|e| e.source == src);
            self.roots[src as usize] = nodes.len() as u32;
            nodes.push(Node::default());
            runs.push((start as u32, end as u32, 0));
            start = end;
        }
        let mut targets: Vec<EndpointId> = Vec::with_capacity(entries.len());
        let mut i = 0;
        while i < nodes.len() {
            let (from, to, depth) = runs[i];
            let d = depth as usize;
            let run = &entries[from as usize..to as usize];
            nodes[i].children = nodes.len() as u32;
            nodes[i].exact = targets.len() as u32;
            // Shorter level lists sort first: the subjects that end here.
            let ends = run.partition_point(|e| lv(e).len() == d);
            push_targets(&mut targets, &run[..ends]);
            nodes[i].hash = targets.len() as u32;
            let mut k = ends;
            while k < run.len() {
                let label = lv(&run[k])[d];
                let n = run[k..].partition_point(|e| lv(e)[d] == label);
                if label == HASH {
                    push_targets(&mut targets, &run[k..k + n]);
                } else {
                    nodes.push(Node {
                        label,
                        ..Node::default()
                    });
                    let at = from + k as u32;
                    runs.push((at, at + n as u32, depth + 1));
                }
                k += n;
            }
            i += 1;
        }
        nodes.push(Node {
            label: 0,
            children: nodes.len() as u32,
            exact: targets.len() as u32,
            hash: targets.len() as u32,
        });
        drop(runs);
        nodes.shrink_to_fit();
        targets.shrink_to_fit();
        self.nodes = nodes;
        self.targets = targets;
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
        let root = self.roots.get(source as usize).copied().unwrap_or(NO_ROOT);
        if root == NO_ROOT {
            return;
        }
        // MQTT §4.7.2: a leading wildcard never matches a topic starting with `$`.
        let dollar = topic.starts_with('$');
        self.walk(root, topic, true, dollar, out);
        out.sort_unstable();
        out.dedup();
    }

    /// The targets of node `n`: its exact and its hash targets (`n`'s range in `targets` ends
    /// where the next node's begins).
    fn node_targets(&self, n: usize) -> &[EndpointId] {
        &self.targets[self.nodes[n].exact as usize..self.nodes[n + 1].exact as usize]
    }

    /// Collects the targets of subjects under `node` that match `rest`, the topic's remaining
    /// levels (at least one). `first`: `node` is the root, where the `$` rule applies. The
    /// literal child is followed in the loop, a `+` child by recursion.
    fn walk(&self, node: u32, rest: &str, first: bool, dollar: bool, out: &mut Vec<EndpointId>) {
        let (mut node, mut rest, mut first) = (node as usize, rest, first);
        loop {
            let (n, next) = (self.nodes[node], self.nodes[node + 1]);
            let wild_ok = !(first && dollar);
            // `x/#` matches `x` itself and anything below: `rest` here is at least one level.
            if wild_ok {
                out.extend_from_slice(&self.targets[n.hash as usize..next.exact as usize]);
            }
            let (level, tail) = match rest.split_once('/') {
                Some((l, t)) => (l, Some(t)),
                None => (rest, None),
            };
            let from = n.children as usize;
            let kids = &self.nodes[from..next.children as usize];
            // The `+` child, when there is one, comes first; the literal ones are in
            // `label_order`.
            let plus = kids.first().is_some_and(|c| c.label == PLUS);
            if wild_ok && plus {
                match tail {
                    Some(t) => self.walk(from as u32, t, false, dollar, out),
                    None => out.extend_from_slice(self.node_targets(from)),
                }
            }
            let skip = usize::from(plus);
            let found = kids[skip..].binary_search_by(|c| {
                label_order(
                    self.labels.bytes((c.label - FIRST_LITERAL) as usize),
                    level.as_bytes(),
                )
            });
            let Ok(k) = found else {
                return;
            };
            let child = from + skip + k;
            match tail {
                Some(t) => (node, rest, first) = (child, t, false),
                None => return out.extend_from_slice(self.node_targets(child)),
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
        let (from, to) = (
            self.subjects_to[id as usize] as usize,
            self.subjects_to[id as usize + 1] as usize,
        );
        self.subject_ids[from..to]
            .iter()
            .any(|&s| overlaps(filter, self.subjects.get(s as usize)))
    }
}

/// Strings stored back to back in one allocation, by index.
#[derive(Debug)]
struct Strings {
    text: String,
    /// String `i` is `text[bounds[i]..bounds[i + 1]]`.
    bounds: Vec<u32>,
}

impl Default for Strings {
    fn default() -> Strings {
        Strings {
            text: String::new(),
            bounds: vec![0],
        }
    }
}

impl Strings {
    fn push(&mut self, s: &str) {
        self.text.push_str(s);
        self.bounds.push(self.text.len() as u32);
    }

    /// String `i`'s bytes (its text is only ever compared).
    fn bytes(&self, i: usize) -> &[u8] {
        &self.text.as_bytes()[self.bounds[i] as usize..self.bounds[i + 1] as usize]
    }

    fn get(&self, i: usize) -> &str {
        &self.text[self.bounds[i] as usize..self.bounds[i + 1] as usize]
    }

    fn shrink_to_fit(&mut self) {
        self.text.shrink_to_fit();
        self.bounds.shrink_to_fit();
    }
}

/// The order of a node's literal children: by length, then by text (a length compare
/// settles most steps of the search without reading the text).
fn label_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Appends the targets of a run of entries sorted by target (one subject), each once.
fn push_targets(targets: &mut Vec<EndpointId>, run: &[Entry]) {
    let at = targets.len();
    for e in run {
        if targets[at..].last() != Some(&e.target) {
            targets.push(e.target);
        }
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

    /// Every non-empty topic of 1 to 4 levels over `alphabet` (empty levels and `$` included).
    fn topics_of_levels(alphabet: &[&str]) -> Vec<String> {
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
        topics
    }

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
        let topics = topics_of_levels(&["a", "b", "c", "", "$s"]);
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

    /// The frozen layout against linear matching on random groups: Subjects over a small
    /// alphabet (empty levels, `$`, `+`, `#`, repeated Subjects and targets), several sources
    /// and targets, every topic of up to four levels over the same alphabet; and
    /// `may_subscribe` against the overlap test over each device's Subjects.
    #[test]
    fn random_groups_agree_with_linear_matching() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let topics = topics_of_levels(&["a", "b", "", "$s", "cc"]);
        let endpoints = [
            dev("A"),
            dev("B"),
            dev("C"),
            Endpoint::Cloud,
            Endpoint::ShadowService,
            Endpoint::Function("arn:f".into()),
        ];
        let filters = ["a", "b", "", "$s", "cc", "+", "+", "#"];
        for round in 0..40 {
            let mut subs = Vec::new();
            for _ in 0..1 + next(60) {
                let depth = 1 + next(4);
                let mut levels: Vec<&str> = (0..depth).map(|_| filters[next(7)]).collect();
                if next(3) == 0 {
                    levels.push("#");
                }
                let subject = levels.join("/");
                let source = endpoints[next(4)].clone();
                let target = endpoints[next(endpoints.len())].clone();
                subs.push(sub(source, &subject, target));
            }
            let r = Router::new(&subs);
            let valid: Vec<Subscription> = subs
                .iter()
                .filter(|s| topic::validate_topic_filter(&s.subject).is_ok())
                .cloned()
                .collect();
            assert_eq!(r.invalid_subjects(), subs.len() - valid.len());
            for source in &endpoints {
                for t in &topics {
                    assert_eq!(
                        targets(&r, source, t),
                        linear(&valid, source, t),
                        "round {round}: {source:?} {t} in {subs:?}"
                    );
                }
            }
            for name in ["A", "B", "C", "Q"] {
                for f in ["#", "a", "a/#", "+/b", "$s/+", "cc/+/#", "", "a/#/b"] {
                    let want = topic::validate_topic_filter(f).is_ok()
                        && valid
                            .iter()
                            .any(|s| s.target == dev(name) && overlaps(f, &s.subject));
                    assert_eq!(r.may_subscribe(name, f), want, "round {round}: {name} {f}");
                }
            }
        }
    }

    /// The layout: 16-byte nodes, a sentinel after the last, children in search order, and
    /// nothing kept but what the tries use.
    #[test]
    fn frozen_layout() {
        assert_eq!(std::mem::size_of::<Node>(), 16);
        let r = Router::new(&group());
        let last = r.nodes.last().expect("sentinel");
        assert_eq!(last.children as usize, r.nodes.len() - 1);
        assert_eq!(last.exact as usize, r.targets.len());
        for w in r.nodes.windows(2) {
            assert!(w[0].children <= w[1].children && w[0].exact <= w[0].hash);
            assert!(w[0].hash <= w[1].exact);
        }
        for n in 0..r.nodes.len() - 1 {
            let kids = &r.nodes[r.nodes[n].children as usize..r.nodes[n + 1].children as usize];
            let lits: Vec<&[u8]> = kids
                .iter()
                .filter(|c| c.label != PLUS)
                .map(|c| r.labels.bytes((c.label - FIRST_LITERAL) as usize))
                .collect();
            assert!(lits.windows(2).all(|w| label_order(w[0], w[1]).is_lt()));
            assert!(kids.iter().skip(1).all(|c| c.label != PLUS));
        }
        // Every distinct literal level once: hello world sensors temp x "" lead trail $aws
        // things A shadow cmd go (bad/#/x is skipped).
        assert_eq!(r.labels.bounds.len() - 1, 14);
        assert_eq!(r.nodes.capacity(), r.nodes.len());
        assert_eq!(r.targets.capacity(), r.targets.len());
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
