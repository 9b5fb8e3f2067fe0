//! What each fuzz target checks, shared by the cargo-fuzz targets in fuzz/ (through `#[path]`)
//! and by tests/fuzz_regressions.rs, which replays every saved reproducer under
//! tests/data/fuzz-regressions/<target>/ in the normal `cargo test`.
//!
//! Each function takes arbitrary bytes and panics only when sprig misbehaves.
#![allow(dead_code)] // every user calls a different subset

use std::path::Path;

use bytes::BytesMut;
use mqttbytes::v4::{self, Packet};
use sprig::json::{self, Value};
use sprig::limits::{MAX_GROUP_JSON_BYTES, MAX_JSON_DEPTH, MAX_LOCAL_PACKET_BYTES};
use sprig::topic::{filter_matches, has_wildcard, validate_topic_filter, validate_topic_name};

/// Same value, numbers compared as numbers (JSON does not distinguish `1` from `1.0`, nor `-0`
/// from `0`: the writer may print either form).
fn same(a: &Value, b: &Value) -> bool {
    let num = |v: &Value| match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    };
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((k1, v1), (k2, v2))| k1 == k2 && same(v1, v2))
        }
        _ => match (num(a), num(b)) {
            (Some(p), Some(q)) => p == q,
            _ => a == b,
        },
    }
}

/// The JSON reader never panics; what it accepts, the writer writes in a form the reader
/// accepts again with the same value.
pub fn json(data: &[u8]) {
    let Ok(v) = json::parse(data, MAX_GROUP_JSON_BYTES, MAX_JSON_DEPTH) else {
        return;
    };
    let text = json::to_string(&v);
    // No size limit here: escaping can make the written form longer than the input.
    let again = json::parse(text.as_bytes(), usize::MAX, MAX_JSON_DEPTH)
        .unwrap_or_else(|e| panic!("writer output not readable: {e}\n{text}"));
    assert!(same(&v, &again), "read(write(v)) != v\n{v:?}\n{again:?}");
}

/// config.json: errors, never a panic.
pub fn config_json(data: &[u8]) {
    let _ = sprig::config::Config::parse(
        data,
        Path::new("/greengrass"),
        Path::new("/greengrass/config/config.json"),
    );
}

/// group.json: errors, never a panic.
pub fn group_json(data: &[u8]) {
    let _ = sprig::config::Group::parse(data, Path::new("group.json"));
}

/// "filter \0 topic": validation and matching never panic and follow MQTT 3.1.1 where that can
/// be checked without a second matcher.
pub fn topic(data: &[u8]) {
    let mut parts = data.splitn(2, |&b| b == 0);
    let (Ok(filter), Ok(topic)) = (
        std::str::from_utf8(parts.next().unwrap_or_default()),
        std::str::from_utf8(parts.next().unwrap_or_default()),
    ) else {
        return;
    };
    let filter_ok = validate_topic_filter(filter).is_ok();
    let topic_ok = validate_topic_name(topic).is_ok();
    let m = filter_matches(filter, topic);
    if topic_ok {
        // Every valid topic name is a valid filter that matches exactly itself.
        assert!(
            validate_topic_filter(topic).is_ok(),
            "topic {topic:?} is not a valid filter"
        );
        assert!(
            filter_matches(topic, topic),
            "{topic:?} does not match itself"
        );
        // `#` matches every topic except those starting with `$` (MQTT 3.1.1 §4.7.2).
        assert_eq!(
            filter_matches("#", topic),
            !topic.starts_with('$'),
            "# vs {topic:?}"
        );
        if filter_ok && !has_wildcard(filter) {
            assert_eq!(m, filter == topic, "{filter:?} vs {topic:?}");
        }
    }
}

/// The broker's packet path after TLS, as src/broker/conn.rs runs it: frame with
/// `mqttbytes::check` against sprig's packet limit, decode with `v4::read`, frame after frame;
/// topics and filters through sprig's validation. Errors end the connection, never the process.
pub fn mqtt_packet(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    loop {
        if mqttbytes::check(buf.iter(), MAX_LOCAL_PACKET_BYTES).is_err() {
            return; // incomplete (wait for more), oversize or malformed header (close)
        }
        match v4::read(&mut buf, MAX_LOCAL_PACKET_BYTES) {
            Ok(Packet::Publish(p)) => {
                let _ = validate_topic_name(&p.topic);
            }
            Ok(Packet::Subscribe(s)) => {
                for f in &s.filters {
                    let _ = validate_topic_filter(&f.path);
                }
            }
            Ok(Packet::Unsubscribe(u)) => {
                for t in &u.topics {
                    let _ = validate_topic_filter(t);
                }
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// A spool segment as found on disk after a crash (any bytes): record decoding never panics,
/// always advances, re-encodes to the same record; `Spool::open` on a directory holding these
/// bytes as a segment recovers what it can, stays within its budget, and every message it
/// recovered can be read back and acknowledged.
pub fn spool_record(data: &[u8]) {
    use sprig::spool::{decode_record, encode_record, Spool};
    let mut rest = data;
    while let Ok((r, used)) = decode_record(rest) {
        assert!(
            used > 0 && used <= rest.len(),
            "decode_record used {used} of {}",
            rest.len()
        );
        let mut again = Vec::new();
        encode_record(&mut again, r.seq, r.qos, r.topic, r.payload);
        let (r2, used2) = decode_record(&again).expect("a re-encoded record decodes");
        assert_eq!(
            (r2.seq, r2.qos, r2.topic, r2.payload, used2),
            (r.seq, r.qos, r.topic, r.payload, again.len())
        );
        rest = &rest[used..];
    }

    let dir = std::env::temp_dir().join(format!("sprig-fuzz-spool-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("0000000000000001.seg"), data).expect("write segment");
    let budget = sprig::limits::MIN_SPOOL_MAX_BYTES;
    if let Ok(mut spool) = Spool::open(&dir, budget) {
        let stats = spool.stats();
        assert!(
            stats.bytes <= budget,
            "recovered {} bytes over the {budget} budget",
            stats.bytes
        );
        let mut after = None;
        let mut n = 0;
        while let Some((seq, _msg)) = spool.next_after(after) {
            assert!(after.is_none_or(|a| seq > a), "sequence went backwards");
            after = Some(seq);
            spool.ack(seq);
            n += 1;
            assert!(n <= stats.messages + 1, "more messages than recovered");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A name server's UDP answer (any bytes, as from the network): parsing never panics, and
/// every address it returns came from a record in the packet (an A record takes at least 15
/// bytes: a compressed name, type, class, TTL, length and 4 bytes of data).
pub fn dns_response(data: &[u8]) {
    use sprig::cloud::dns::{parse_response, Answer};
    let id = match data {
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
        _ => 0,
    };
    if let Ok(Answer::Addresses(ips)) = parse_response(data, id) {
        assert!(
            ips.len() * 15 <= data.len(),
            "{} addresses from {} bytes",
            ips.len(),
            data.len()
        );
    }
}

/// An HTTP proxy's reply to CONNECT (any bytes): parsing never panics; an open tunnel's header
/// length lies within the bytes and ends with the blank line, so no tunnelled byte is eaten.
pub fn proxy_reply(data: &[u8]) {
    use sprig::cloud::proxy::parse_connect_reply;
    if let Ok(Some(n)) = parse_connect_reply(data) {
        assert!(
            n >= 4 && n <= data.len(),
            "header of {n} in {} bytes",
            data.len()
        );
        assert_eq!(&data[n - 4..n], b"\r\n\r\n");
    }
}

/// `broker_session`: the device session's rules on arbitrary bytes. Byte 0 picks the read size
/// (1..=64) and how much room the work queue has each round; bit 7 of byte 1 prepends a valid
/// CONNECT so the fuzzer reaches the connected state at once. Never panics; every reply is a
/// well-formed packet; never more PUBACKs than messages the queue took (nothing acknowledged
/// that was not taken); the input buffer stays within one packet plus one read.
pub fn broker_session(data: &[u8]) {
    use sprig::broker::session::{Session, Step, TestBroker};
    use std::time::{Duration, Instant};
    let (Some(&ctl), Some(&flags)) = (data.first(), data.get(1)) else {
        return;
    };
    let mut input = Vec::new();
    if flags & 0x80 != 0 {
        let mut c = v4::Connect::new("A");
        c.keep_alive = 10;
        let mut b = BytesMut::new();
        c.write(&mut b).unwrap();
        input.extend_from_slice(&b);
    }
    input.extend_from_slice(&data[2..]);
    let chunk = usize::from(ctl & 0x3f) + 1;
    let mut core = TestBroker::default();
    let now = Instant::now();
    let mut s = Session::new("cert-a".into(), now);
    let mut pubacks = 0usize;
    let mut replies = BytesMut::new();
    'outer: for (i, piece) in input.chunks(chunk).enumerate() {
        let t = now + Duration::from_millis(i as u64);
        if s.received(piece, t, &mut core).is_err() {
            break;
        }
        for round in 0..64 {
            // Room comes and goes: some rounds the queue is full.
            core.room = if (ctl >> 6) as usize + round % 3 == 0 {
                0
            } else {
                2
            };
            let step = s.process(&mut core, t);
            replies.extend_from_slice(s.output());
            s.clear_output();
            match step {
                Ok(Step::More) | Ok(Step::Paused) => {}
                Ok(Step::Idle) => break,
                Ok(Step::Close) | Err(_) => break 'outer,
            }
        }
        assert!(
            s.buffered_capacity() <= 2 * (MAX_LOCAL_PACKET_BYTES + 8 + chunk) + 64,
            "session buffers grew to {}",
            s.buffered_capacity()
        );
    }
    while !replies.is_empty() {
        match v4::read(&mut replies, 1 << 20) {
            Ok(Packet::PubAck(_)) => pubacks += 1,
            Ok(_) => {}
            Err(e) => panic!("a reply that does not parse: {e:?}"),
        }
    }
    assert!(
        pubacks <= core.taken.len(),
        "{pubacks} PUBACKs for {} messages taken",
        core.taken.len()
    );
}

/// `stream_frame`: bytes from a stream manager client, fed to one session (in two pieces, to
/// cross frame boundaries) over a fresh store. The session never panics, never buffers more
/// than one frame, and everything it sends back is whole frames (after the connect version
/// byte) that the client's framing accepts; each frame the parser finds decodes or is refused
/// without a panic.
#[cfg(feature = "stream-manager")]
pub fn stream_frame(data: &[u8]) {
    use sprig::streams::session::{Ctx, Session};
    use sprig::streams::store::Store;
    use sprig::streams::wire::{decode_request, parse_frame, Frame};

    let mut rest = data.get(1..).unwrap_or(&[]);
    while let Ok(Frame::Whole { op, payload, used }) = parse_frame(rest) {
        let _ = decode_request(op, payload);
        rest = &rest[used..];
    }

    let dir = std::env::temp_dir().join(format!("sprig-fuzz-streams-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut store = Store::open(&dir, 1 << 20);
    let mut session = Session::new();
    let no_token = |_: &str| false;
    let cut = data.first().map_or(0, |b| *b as usize).min(data.len());
    let mut out = Vec::new();
    for piece in [&data[..cut], &data[cut..]] {
        let mut ctx = Ctx {
            store: &mut store,
            now_ms: 1_000,
            token_ok: &no_token,
            authenticate: false,
            appended: false,
        };
        let r = session.input(piece, &mut ctx, &mut out);
        ctx.now_ms = 100_000;
        session.tick(&mut ctx, &mut out);
        if r.is_err() {
            break;
        }
    }
    let mut replies = out.get(1..).unwrap_or(&[]);
    while !replies.is_empty() {
        match parse_frame(replies) {
            Ok(Frame::Whole { used, .. }) => replies = &replies[used..],
            other => panic!("the session sent a broken frame: {other:?}"),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A Jobs service message and an HTTPS download's response head (any bytes, as from the
/// network; the first byte picks which): parsing never panics; a job offer yields at most one
/// deployment, only while that job is the current one, and every publish stays on this
/// thing's Jobs topics; a complete head's length lies within the bytes.
pub fn jobs_message(data: &[u8]) {
    use sprig::deploy::fetch::Head;
    use sprig::deploy::jobs::{Action, Jobs};
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    if pick & 1 == 1 {
        if let Ok(Some(h)) = Head::parse(rest) {
            assert!(
                h.len <= rest.len(),
                "head of {} in {} bytes",
                h.len,
                rest.len()
            );
        }
        return;
    }
    let base = "$aws/things/core/jobs";
    let topics = [
        "/start-next/accepted",
        "/notify-next",
        "/start-next/rejected",
        "/j/update/rejected",
    ];
    let mut j = Jobs::new("core");
    j.connected();
    let actions = j.message(
        &format!("{base}{}", topics[usize::from(pick >> 1) % 4]),
        rest,
    );
    let deploys = actions
        .iter()
        .filter(|a| matches!(a, Action::Deploy { .. }))
        .count();
    assert!(deploys <= 1, "{deploys} deployments from one message");
    if deploys == 1 {
        assert!(j.current().is_some(), "a deployment without a current job");
    }
    for a in &actions {
        if let Action::Publish { topic, .. } = a {
            assert!(topic.starts_with(&format!("{base}/")), "publish on {topic}");
        }
    }
}

/// Shadow requests: `data` is a sequence of requests separated by NUL bytes, each one byte
/// choosing the operation (update/get/delete) then the payload, all on thing `t`. The service
/// never panics; every answer is a JSON document on `<op>/accepted|rejected`; a rejection has
/// a code and a message; an accepted update grows the version by one; what is kept reads back
/// from its stored form unchanged and stays within the state limit.
pub fn shadow_requests(data: &[u8]) {
    use sprig::shadow::{store, ShadowOp, Shadows};
    let mut shadows = Shadows::new(&[("t".to_string(), true)], 64 * 1024);
    for (i, chunk) in data.split(|&b| b == 0).enumerate().take(64) {
        let Some((&sel, payload)) = chunk.split_first() else {
            continue;
        };
        let op = [ShadowOp::Update, ShadowOp::Get, ShadowOp::Delete][usize::from(sel % 3)];
        let before = shadows.get("t").map_or(0, |s| s.version);
        let mut plan = shadows.plan("t", op, payload, i as u64);
        let answer = json::parse(plan.answer.1.as_bytes(), usize::MAX, MAX_JSON_DEPTH)
            .unwrap_or_else(|e| panic!("answer is not JSON: {e}\n{}", plan.answer.1));
        match &plan.rejection {
            Some(r) => {
                assert!(plan.answer.0.ends_with("/rejected") && plan.new.is_none());
                assert_eq!(answer.get("code"), Some(&Value::Int(i64::from(r.code))));
                assert!(answer.get("message").and_then(Value::as_str).is_some());
            }
            None => {
                assert!(plan.answer.0.ends_with("/accepted"), "{}", plan.answer.0);
                for r in &plan.side {
                    json::parse(r.body.as_bytes(), usize::MAX, MAX_JSON_DEPTH).unwrap();
                }
                if let Some(new) = &plan.new {
                    if op == ShadowOp::Update {
                        assert_eq!(new.version, before + 1);
                    }
                    assert!(new.state_bytes() <= sprig::limits::SHADOW_MAX_STATE_BYTES);
                    // Numbers may change form (1.5e3 is written 1500), so compare written forms.
                    let text = store::encode(new);
                    let back = store::decode(text.as_bytes()).unwrap();
                    assert_eq!(store::encode(&back), text);
                    assert_eq!((back.version, back.deleted), (new.version, new.deleted));
                    shadows.apply(&mut plan, text.len());
                }
            }
        }
    }
}

/// A discovery request (any bytes, as read from a TLS connection; the first byte picks the
/// peer: even = the group device `sensor`, odd = a certificate in no group): `respond` never
/// panics; a reply is well-formed HTTP/1.1 with a `content-length: ` the stock SDK finds and
/// a JSON body; a stranger only ever gets 400 or 403; a 200 goes only to `sensor` asking for
/// `sensor` by GET; more bytes are asked for only below the size bound.
pub fn discovery_request(data: &[u8]) {
    use sprig::discovery::{auto_connectivity, respond, Directory, Step};
    use sprig::limits::DISCOVERY_MAX_REQUEST_BYTES;
    let Some((&who, req)) = data.split_first() else {
        return;
    };
    let req = &req[..req.len().min(DISCOVERY_MAX_REQUEST_BYTES)];
    let (member, stranger) = ("a".repeat(64), "b".repeat(64));
    let dir = Directory {
        group_id: "g".into(),
        core_thing_arn: "arn:aws:iot:us-east-1:1:thing/core".into(),
        connectivity: auto_connectivity(&["192.0.2.1".parse().unwrap()], 8883),
        cas: vec![],
        members: [(member.clone(), "sensor".to_string())]
            .into_iter()
            .collect(),
    };
    let cert = if who % 2 == 0 { &member } else { &stranger };
    let r = match respond(req, cert, &dir) {
        Step::NeedMore => {
            assert!(
                req.len() < DISCOVERY_MAX_REQUEST_BYTES,
                "NeedMore at the bound"
            );
            return;
        }
        Step::Reply(r) => r,
    };
    let wire = r.to_bytes();
    let text = std::str::from_utf8(&wire).expect("reply is UTF-8");
    assert!(
        text.starts_with(&format!("HTTP/1.1 {} ", r.status)),
        "{text}"
    );
    let (head, body) = text
        .split_once("\r\n\r\n")
        .expect("head ends with a blank line");
    assert!(
        head.contains(&format!("\r\ncontent-length: {}\r\n", body.len())),
        "{head}"
    );
    json::parse(body.as_bytes(), 1 << 20, MAX_JSON_DEPTH).expect("body is JSON");
    if cert == &stranger {
        assert!(matches!(r.status, 400 | 403), "stranger got {}", r.status);
    }
    if r.status == 200 {
        assert!(cert == &member);
        // httparse skips empty lines before the request line (RFC 9112 §2.2 lets a server
        // ignore them), so a 200 may follow leading CR/LF bytes.
        let start = b"GET /greengrass/discover/thing/sensor";
        let line = &req[req
            .iter()
            .position(|b| !b"\r\n".contains(b))
            .unwrap_or(req.len())..];
        assert!(
            line.starts_with(start),
            "200 for {:?}",
            String::from_utf8_lossy(req)
        );
    }
}

/// One IPC request (any bytes): parsing never panics; a parsed request used only the bytes it
/// says, parses the same from exactly those bytes, names a function ARN and has a bounded
/// body; a refusal is a 4xx; a client context never panics its decoder.
pub fn ipc_request(data: &[u8]) {
    use sprig::ipc::{decode_context, parse, Parse};
    use sprig::limits::IPC_MAX_BODY_BYTES;
    match parse(data) {
        Ok(Parse::Done(r, n)) => {
            assert!(n <= data.len(), "used {n} of {} bytes", data.len());
            assert!(r.body.len() <= IPC_MAX_BODY_BYTES);
            assert!(r.arn.starts_with("arn:"), "{:?}", r.arn);
            match parse(&data[..n]) {
                Ok(Parse::Done(again, m)) => assert_eq!((again, m), (r.clone(), n)),
                other => panic!("re-parse of the used bytes: {other:?}"),
            }
            if let Some(c) = &r.client_context {
                let _ = decode_context(c);
            }
        }
        Ok(Parse::Partial) => {}
        Err(e) => assert!((400..500).contains(&e.status), "{e}"),
    }
}

/// A routing table from arbitrary bytes, checked against linear matching. Each line is one
/// subscription: its first byte picks the Source, its second the Target (of four endpoints),
/// the rest is the Subject; a line starting with `>` is a topic (or filter) to ask about.
/// `Router::route` from every endpoint must give exactly the targets of the valid
/// subscriptions whose Subject matches the topic (each once, ascending), and
/// `may_subscribe` exactly what `overlaps` says of the Subjects routed to that device.
pub fn router(data: &[u8]) {
    use sprig::config::{Endpoint, Subscription};
    use sprig::router::{overlaps, Router};
    let text = String::from_utf8_lossy(data);
    let endpoints = [
        Endpoint::Device("a".into()),
        Endpoint::Device("b".into()),
        Endpoint::Cloud,
        Endpoint::Function("arn:f".into()),
    ];
    let pick = |b: Option<u8>| endpoints[usize::from(b.unwrap_or(0)) % endpoints.len()].clone();
    let mut subs = Vec::new();
    let mut asks = Vec::new();
    for line in text.lines().take(200) {
        if let Some(t) = line.strip_prefix('>') {
            asks.push(t.to_string());
        } else {
            let b = line.as_bytes();
            let (source, target) = (pick(b.first().copied()), pick(b.get(1).copied()));
            let subject = line.get(2..).unwrap_or("").to_string();
            subs.push(Subscription {
                id: String::new(),
                source,
                subject,
                target,
            });
        }
    }
    let r = Router::new(&subs);
    let valid: Vec<&Subscription> = subs
        .iter()
        .filter(|s| validate_topic_filter(&s.subject).is_ok())
        .collect();
    assert_eq!(r.invalid_subjects(), subs.len() - valid.len());
    let mut out = Vec::new();
    for ask in asks.iter().take(32) {
        if validate_topic_name(ask).is_ok() {
            for source in &endpoints {
                r.route_from(source, ask, &mut out);
                let got: Vec<&Endpoint> = out.iter().map(|&id| r.endpoint(id).unwrap()).collect();
                let mut want: Vec<&Endpoint> = valid
                    .iter()
                    .filter(|s| &s.source == source && filter_matches(&s.subject, ask))
                    .map(|s| &s.target)
                    .collect();
                want.sort();
                want.dedup();
                let mut sorted = got.clone();
                sorted.sort();
                assert_eq!(sorted, want, "{source:?} {ask:?}");
                assert!(
                    out.windows(2).all(|w| w[0] < w[1]),
                    "not once each, ascending"
                );
            }
        }
        for name in ["a", "b"] {
            let want = validate_topic_filter(ask).is_ok()
                && valid.iter().any(|s| {
                    s.target == Endpoint::Device(name.into()) && overlaps(ask, &s.subject)
                });
            assert_eq!(r.may_subscribe(name, ask), want, "{name} {ask:?}");
        }
    }
}
