use super::*;
use bytes::Bytes;
use mqttbytes::v4::{Connect, Publish, Subscribe, Unsubscribe};

fn t0() -> Instant {
    Instant::now()
}

fn bytes_of(write: impl FnOnce(&mut BytesMut) -> Result<usize, mqttbytes::Error>) -> Vec<u8> {
    let mut b = BytesMut::new();
    write(&mut b).unwrap();
    b.to_vec()
}

fn connect(client_id: &str, keep_alive: u16) -> Vec<u8> {
    let mut c = Connect::new(client_id);
    c.keep_alive = keep_alive;
    bytes_of(|b| c.write(b))
}

fn publish(topic: &str, qos: QoS, pkid: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = Publish::new(topic, qos, payload.to_vec());
    p.pkid = pkid;
    bytes_of(|b| p.write(b))
}

/// Every reply packet in the session's output, decoded; the output is cleared.
fn replies(s: &mut Session) -> Vec<Packet> {
    let mut b = BytesMut::from(s.output());
    s.clear_output();
    let mut v = Vec::new();
    while !b.is_empty() {
        v.push(v4::read(&mut b, 1 << 20).expect("a well-formed reply"));
    }
    v
}

/// A session for device A, connected with keep-alive `ka`; the CONNACK is consumed.
fn connected(core: &mut TestBroker, ka: u16, now: Instant) -> Session {
    let mut s = Session::new("cert-a".into(), now);
    s.received(&connect("A", ka), now, core).unwrap();
    assert_eq!(s.process(core, now), Ok(Step::Idle));
    match replies(&mut s).as_slice() {
        [Packet::ConnAck(a)] => assert_eq!(a.code, ConnectReturnCode::Success),
        other => panic!("{other:?}"),
    }
    assert_eq!(core.connected, vec!["A".to_string()]);
    s
}

#[test]
fn connect_is_accepted_only_for_the_certificate_s_thing_name() {
    let now = t0();
    let mut core = TestBroker::default();
    let s = connected(&mut core, 30, now);
    assert_eq!(s.thing(), Some("A"));

    // Right certificate, wrong client id; unknown certificate: closed without a CONNACK.
    for (cert, id, why) in [
        ("cert-a", "B", "is not the thing name"),
        ("cert-x", "A", "is not the certificate of any device"),
    ] {
        let mut core = TestBroker::default();
        let mut s = Session::new(cert.into(), now);
        s.received(&connect(id, 30), now, &mut core).unwrap();
        match s.process(&mut core, now) {
            Err(Close::Refused(m)) => assert!(m.contains(why), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(s.output().is_empty() && core.connected.is_empty());
    }

    // MQTT 3.1 (protocol level 3): CONNACK 1, then closed.
    let mut v31 = connect("A", 30);
    let at = v31.windows(4).position(|w| w == b"MQTT").unwrap();
    v31[at + 4] = 3;
    let mut s = Session::new("cert-a".into(), now);
    let mut core = TestBroker::default();
    let r = s
        .received(&v31, now, &mut core)
        .and_then(|()| s.process(&mut core, now));
    assert!(
        matches!(r, Err(Close::Malformed(_)) | Err(Close::Refused(_))),
        "{r:?}"
    );
}

#[test]
fn anything_before_connect_closes_and_connect_has_a_deadline() {
    let now = t0();
    let mut core = TestBroker::default();
    let mut s = Session::new("cert-a".into(), now);
    assert_eq!(
        s.deadline(),
        Some(now + Duration::from_secs(limits::CONNECT_TIMEOUT_SECS))
    );
    assert!(s.expired(now).is_none());
    match s.expired(now + Duration::from_secs(limits::CONNECT_TIMEOUT_SECS)) {
        Some(Close::Refused(m)) => assert!(m.contains("no MQTT CONNECT"), "{m}"),
        other => panic!("{other:?}"),
    }
    s.received(&bytes_of(|b| v4::PingReq.write(b)), now, &mut core)
        .unwrap();
    assert!(matches!(
        s.process(&mut core, now),
        Err(Close::Malformed(_))
    ));
}

#[test]
fn qos1_is_acknowledged_only_once_the_queue_took_it() {
    let now = t0();
    let mut core = TestBroker {
        room: 1,
        ..TestBroker::default()
    };
    let mut s = connected(&mut core, 10, now);
    let mut input = publish("t/1", QoS::AtLeastOnce, 1, b"one");
    input.extend(publish("t/2", QoS::AtLeastOnce, 2, b"two"));
    input.extend(bytes_of(|b| v4::PingReq.write(b)));
    s.received(&input, now, &mut core).unwrap();

    // The first fits, the second waits: PUBACK 1 only, and nothing behind it is read.
    assert_eq!(s.process(&mut core, now), Ok(Step::Paused));
    assert!(s.is_paused());
    match replies(&mut s).as_slice() {
        [Packet::PubAck(a)] => assert_eq!(a.pkid, 1),
        other => panic!("{other:?}"),
    }
    assert_eq!(core.taken.len(), 1);
    // Still no room: still paused, and the keep-alive clock stands still meanwhile.
    assert_eq!(s.process(&mut core, now), Ok(Step::Paused));
    assert_eq!(s.deadline(), None);
    assert!(s.expired(now + Duration::from_secs(3600)).is_none());

    // Room: the held message goes in first, then its PUBACK, then the PINGREQ behind it.
    core.room = 5;
    let later = now + Duration::from_secs(100);
    assert_eq!(s.process(&mut core, later), Ok(Step::Idle));
    match replies(&mut s).as_slice() {
        [Packet::PubAck(a), Packet::PingResp] => assert_eq!(a.pkid, 2),
        other => panic!("{other:?}"),
    }
    let topics: Vec<&str> = core.taken.iter().map(|i| i.topic.as_str()).collect();
    assert_eq!(topics, ["t/1", "t/2"]);
    assert_eq!(core.taken[1].payload, Bytes::from_static(b"two"));
    assert_eq!(core.taken[1].source, Endpoint::Device("A".into()));
    // The clock restarted when the message was taken: 1.5 × 10 s from then.
    assert_eq!(s.deadline(), Some(later + Duration::from_secs(15)));
}

#[test]
fn qos0_waits_too_and_nothing_is_lost() {
    let now = t0();
    let mut core = TestBroker::default();
    let mut s = connected(&mut core, 0, now);
    let input: Vec<u8> = (0..10)
        .flat_map(|i| publish("t", QoS::AtMostOnce, 0, &[i]))
        .collect();
    s.received(&input, now, &mut core).unwrap();
    let mut rounds = 0;
    while core.taken.len() < 10 {
        core.room = 3;
        assert_ne!(s.process(&mut core, now), Ok(Step::Close));
        rounds += 1;
        assert!(rounds < 10);
    }
    assert!(s.output().is_empty(), "QoS 0 has no PUBACK");
    let got: Vec<u8> = core.taken.iter().map(|i| i.payload[0]).collect();
    assert_eq!(got, (0..10).collect::<Vec<u8>>());
    assert_eq!(s.deadline(), None, "keep-alive 0: no deadline");
}

#[test]
fn keep_alive_expires_after_one_and_a_half_periods_of_silence() {
    let now = t0();
    let mut core = TestBroker::default();
    let mut s = connected(&mut core, 4, now);
    assert!(s.expired(now + Duration::from_millis(5999)).is_none());
    assert_eq!(
        s.expired(now + Duration::from_secs(6)),
        Some(Close::KeepAlive)
    );
    // Any bytes count as a sign of life.
    let t = now + Duration::from_secs(5);
    s.received(&bytes_of(|b| v4::PingReq.write(b)), t, &mut core)
        .unwrap();
    assert!(s.expired(now + Duration::from_secs(10)).is_none());
    assert_eq!(s.process(&mut core, t), Ok(Step::Idle));
    assert!(matches!(replies(&mut s).as_slice(), [Packet::PingResp]));
}

#[test]
fn subscribe_grants_qos0_where_the_core_allows_and_0x80_elsewhere() {
    let now = t0();
    let mut core = TestBroker::default();
    let mut s = connected(&mut core, 30, now);
    let mut sub = Subscribe::new("ok/#", QoS::AtLeastOnce);
    sub.pkid = 9;
    for f in ["denied/x", "bad/#/x", &"l".repeat(257)] {
        sub.add(f.to_string(), QoS::AtMostOnce);
    }
    s.received(&bytes_of(|b| sub.write(b)), now, &mut core)
        .unwrap();
    assert_eq!(s.process(&mut core, now), Ok(Step::Idle));
    match replies(&mut s).as_slice() {
        [Packet::SubAck(a)] => {
            assert_eq!(a.pkid, 9);
            use SubscribeReasonCode::*;
            assert_eq!(
                a.return_codes,
                [Success(QoS::AtMostOnce), Failure, Failure, Failure]
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(core.filters, ["ok/#"]);
    let unsub = Unsubscribe::new("ok/#");
    s.received(&bytes_of(|b| unsub.write(b)), now, &mut core)
        .unwrap();
    assert_eq!(s.process(&mut core, now), Ok(Step::Idle));
    assert!(matches!(replies(&mut s).as_slice(), [Packet::UnsubAck(_)]));
    assert!(core.filters.is_empty());
}

#[test]
fn protocol_violations_close_the_session() {
    let now = t0();
    let cases: [(Vec<u8>, &str); 6] = [
        (publish("t", QoS::ExactlyOnce, 1, b"x"), "QoS 2"),
        (publish("t/+", QoS::AtMostOnce, 0, b"x"), "PUBLISH topic"),
        (connect("A", 30), "a second CONNECT"),
        (vec![0xf0, 0x00], "malformed"),
        // SUBSCRIBE / UNSUBSCRIBE with a packet id and no filter (found by the fuzzer).
        (vec![0x82, 0x02, 0x10, 0x0d], "without a topic filter"),
        (vec![0xa2, 0x02, 0x10, 0x0e], "without a topic filter"),
    ];
    for (input, why) in cases {
        let mut core = TestBroker {
            room: 10,
            ..TestBroker::default()
        };
        let mut s = connected(&mut core, 30, now);
        s.received(&input, now, &mut core).unwrap();
        match s.process(&mut core, now) {
            Err(Close::Malformed(m)) => assert!(m.contains(why), "{m} / {why}"),
            other => panic!("{why}: {other:?}"),
        }
    }
    let mut core = TestBroker::default();
    let mut s = connected(&mut core, 30, now);
    s.received(&bytes_of(|b| v4::Disconnect.write(b)), now, &mut core)
        .unwrap();
    assert_eq!(s.process(&mut core, now), Ok(Step::Close));
}

#[test]
fn an_oversized_publish_is_skipped_unread_across_reads_and_the_session_goes_on() {
    let now = t0();
    let mut core = TestBroker {
        room: 10,
        ..TestBroker::default()
    };
    let mut s = connected(&mut core, 30, now);
    let big = publish(
        "big",
        QoS::AtLeastOnce,
        3,
        &vec![1u8; limits::MAX_LOCAL_PACKET_BYTES],
    );
    let mut input = big.clone();
    input.extend(publish("small", QoS::AtLeastOnce, 4, b"s"));
    // Fed in 4 KiB reads, as the shell does: the big one never sits in the buffer whole.
    for chunk in input.chunks(4096) {
        s.received(chunk, now, &mut core).unwrap();
        assert!(s.inbuf.len() <= 4096 + 16, "{}", s.inbuf.len());
        assert_eq!(s.process(&mut core, now), Ok(Step::Idle));
    }
    assert_eq!(core.oversize.len(), 1);
    match replies(&mut s).as_slice() {
        [Packet::PubAck(a)] => assert_eq!(a.pkid, 4, "only the small one is acknowledged"),
        other => panic!("{other:?}"),
    }
    assert_eq!(core.taken.len(), 1);
    // Any other oversized packet closes.
    let mut sub = vec![0x82, 0xff, 0xff, 0xff, 0x7f];
    sub.extend([0; 8]);
    assert!(matches!(
        s.received(&sub, now, &mut core),
        Err(Close::Malformed(_))
    ));
}

#[test]
fn frames_per_wake_bounds_one_round_and_idle_sessions_hold_no_input_buffer() {
    let now = t0();
    let mut core = TestBroker {
        room: 1000,
        ..TestBroker::default()
    };
    let mut s = connected(&mut core, 30, now);
    let n = limits::FRAMES_PER_WAKE + 5;
    let input: Vec<u8> = (0..n)
        .flat_map(|_| publish("t", QoS::AtMostOnce, 0, b"x"))
        .collect();
    s.received(&input, now, &mut core).unwrap();
    assert_eq!(s.process(&mut core, now), Ok(Step::More));
    assert_eq!(core.taken.len(), limits::FRAMES_PER_WAKE);
    assert_eq!(s.process(&mut core, now), Ok(Step::Idle));
    assert_eq!(core.taken.len(), n);
    assert_eq!(s.inbuf.capacity(), 0, "idle: no input buffer kept");
    assert!(s.buffered_capacity() <= limits::SESSION_REPLY_KEEP_BYTES);
    // A partial packet is kept until the rest comes.
    let p = publish("t", QoS::AtLeastOnce, 7, b"xyz");
    s.received(&p[..3], now, &mut core).unwrap();
    assert_eq!(s.process(&mut core, now), Ok(Step::Idle));
    s.received(&p[3..], now, &mut core).unwrap();
    assert_eq!(s.process(&mut core, now), Ok(Step::Idle));
    assert!(matches!(replies(&mut s).as_slice(), [Packet::PubAck(a)] if a.pkid == 7));
    assert!(s.buffered_capacity() <= limits::SESSION_REPLY_KEEP_BYTES);
}
