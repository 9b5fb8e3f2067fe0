//! The local broker with real clients: mosquitto_pub/mosquitto_sub and paho-mqtt (Python) over
//! TLS, device certificates made by the openssl CLI, the real sprig binary (SPRIG_TEST_BIN).
//!
//! One group for every test: devices A, B, C (plus a certificate that is in no group);
//! subscriptions A→B `direct/b`, A→B and A→C `room/+/temp` and `flood/#`, A→B `big/#`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;

struct Rig {
    root: TestRoot,
    daemon: Daemon,
    ca: PathBuf,
    a: Dev,
    b: Dev,
    c: Dev,
    stranger: Dev,
}

fn group_json(devs: &[&Dev]) -> String {
    let (a, b, c) = (
        devs[0].thing_arn(),
        devs[1].thing_arn(),
        devs[2].thing_arn(),
    );
    let route = |s: &String, subj: &str, t: &String| (s.clone(), subj.to_string(), t.clone());
    group_json_with(
        devs,
        &[
            route(&a, "direct/b", &b),
            route(&a, "room/+/temp", &b),
            route(&a, "room/+/temp", &c),
            route(&a, "flood/#", &b),
            route(&a, "flood/#", &c),
            route(&a, "big/#", &b),
        ],
    )
}

/// Starts a daemon on a fresh root; `runtime_extra` goes into the `runtime` object and
/// `top_extra` at the top level of config.json.
fn rig_with(label: &str, runtime_extra: &str, top_extra: &str) -> Rig {
    let root = TestRoot::new(label);
    let certs = root.certs();
    fs::create_dir_all(&certs).unwrap();
    // TestRoot::new made the group CA (certs/group-ca.pem) the broker's certificate comes from.
    let ca = certs.join("group-ca.pem");
    let devdir = root.dir.path().join("devices");
    fs::create_dir_all(&devdir).unwrap();
    let (a, b, c) = (
        make_device(&devdir, "A"),
        make_device(&devdir, "B"),
        make_device(&devdir, "C"),
    );
    let stranger = make_device(&devdir, "stranger");
    root.write_group(&group_json(&[&a, &b, &c]));
    let config = root.default_config().replace(
        r#""runtime": { "cgroup": { "useSystemd": "no" } },"#,
        &format!(
            r#""runtime": {{ {runtime_extra} "cgroup": {{ "useSystemd": "no" }} }},{top_extra}"#
        ),
    );
    assert!(config.contains(runtime_extra) && config.contains(top_extra));
    root.write_config(&config);
    let daemon = root.start();
    let rig = Rig {
        root,
        daemon,
        ca,
        a,
        b,
        c,
        stranger,
    };
    assert!(
        wait_until(PATIENCE, || status_json(&rig).is_some()),
        "daemon did not come up:\n{}",
        rig.daemon.output()
    );
    rig
}

fn rig(label: &str) -> Rig {
    rig_with(label, "", "")
}

fn status_json(rig: &Rig) -> Option<String> {
    common::status_json(&rig.root)
}

/// A counter from `sprig status --json` (e.g. `"queue_full"`), by key name.
fn counter(rig: &Rig, key: &str) -> u64 {
    status_counter(&rig.root, key)
}

/// Waits until `pred` holds for a counter (the status file is rewritten about every second).
fn wait_counter(rig: &Rig, key: &str, pred: impl Fn(u64) -> bool) -> bool {
    wait_until(PATIENCE, || pred(counter(rig, key)))
}

fn py_cmd(rig: &Rig, dev: &Dev, cmd: &str, args: &[&str]) -> Command {
    let mut c = Command::new(python());
    c.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/broker_clients.py"))
        .arg(cmd)
        .arg(rig.root.mqtt_port.to_string())
        .arg(&rig.ca)
        .arg(&dev.cert)
        .arg(&dev.key)
        .arg(&dev.name)
        .args(args)
        .stdin(Stdio::null());
    c
}

fn py(rig: &Rig, dev: &Dev, cmd: &str, args: &[&str]) -> String {
    let out = py_cmd(rig, dev, cmd, args)
        .output()
        .expect("run python (set SPRIG_TEST_PYTHON or make .venv)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python {cmd} failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

impl Bg {
    /// A background Python client (poll its stdout with `wait_for`).
    fn start(rig: &Rig, dev: &Dev, cmd: &str, args: &[&str], label: &str) -> Bg {
        let out = rig.root.dir.path().join(format!("{label}.out"));
        Bg::spawn(py_cmd(rig, dev, cmd, args), out)
    }
}

fn mosq_args(rig: &Rig, dev: &Dev, client_id: &str) -> Vec<String> {
    mosquitto_device_args(rig.root.mqtt_port, &rig.ca, &dev.cert, &dev.key, client_id)
}

fn mosquitto_pub(rig: &Rig, dev: &Dev, client_id: &str, topic: &str, msg: &str) -> Output {
    Command::new("mosquitto_pub")
        .args(mosq_args(rig, dev, client_id))
        .args(["-t", topic, "-m", msg, "-q", "1"])
        .stdin(Stdio::null())
        .output()
        .expect("run mosquitto_pub")
}

/// mosquitto_sub in the background (`-d`, so its stdout says when the SUBACK came).
fn mosquitto_sub(rig: &Rig, dev: &Dev, filters: &[&str], count: u32, label: &str) -> Bg {
    let out = rig.root.dir.path().join(format!("{label}.out"));
    let f = fs::File::create(&out).unwrap();
    // stdbuf: mosquitto_sub block-buffers stdout into a file; we poll it line by line.
    let mut cmd = Command::new("stdbuf");
    cmd.args(["-oL", "mosquitto_sub"])
        .args(mosq_args(rig, dev, &dev.name))
        .args(["-d", "-v", "-C", &count.to_string(), "-W", "60"]);
    for t in filters {
        cmd.args(["-t", t]);
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(f)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn mosquitto_sub");
    Bg { child, out }
}

/// The broker's log without per-connection routine (connected, disconnected, refused for
/// the stranger's certificate), for failure messages.
fn unusual_log_lines(rig: &Rig) -> String {
    log_text(rig)
        .lines()
        .filter(|l| {
            !l.contains(": connected (certificate")
                && !l.contains(": disconnected")
                && !l.contains("is not the certificate of any device")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn log_text(rig: &Rig) -> String {
    common::log_text(&rig.root, &rig.daemon)
}

#[test]
fn a_to_b_with_mosquitto_clients_and_unrouted_topics_dropped() {
    let rig = rig("broker-a2b");
    let sub = mosquitto_sub(&rig, &rig.b, &["direct/b", "room/+/temp"], 3, "sub-b");
    assert!(sub.wait_for("Subscribed"), "{}", sub.text());
    assert!(
        sub.text().contains("Subscribed (mid: 1): 0, 0"),
        "{}",
        sub.text()
    );
    for (topic, msg) in [
        ("direct/b", "first"),
        ("secret/x", "unrouted"),
        ("room/kitchen/temp", "21.5"),
    ] {
        let out = mosquitto_pub(&rig, &rig.a, "A", topic, msg);
        assert!(
            out.status.success(),
            "mosquitto_pub {topic}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // TLS 1.2 as well as the default 1.3.
    let out = Command::new("mosquitto_pub")
        .args(mosq_args(&rig, &rig.a, "A"))
        .args([
            "--tls-version",
            "tlsv1.2",
            "-t",
            "direct/b",
            "-m",
            "over-tls12",
            "-q",
            "1",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = sub.finish();
    assert!(text.contains("direct/b over-tls12"), "{text}");
    assert!(text.contains("direct/b first"), "{text}");
    assert!(text.contains("room/kitchen/temp 21.5"), "{text}");
    assert!(!text.contains("unrouted"), "{text}");
    assert!(wait_counter(&rig, "no_route", |n| n >= 1));
}

#[test]
fn fan_out_to_two_devices_along_a_wildcard_subject() {
    let rig = rig("broker-fanout");
    let sb = mosquitto_sub(&rig, &rig.b, &["room/#"], 1, "sub-b");
    let sc = mosquitto_sub(&rig, &rig.c, &["room/+/+"], 1, "sub-c");
    assert!(sb.wait_for("Subscribed") && sc.wait_for("Subscribed"));
    // Not covered by `room/+/temp`: must not arrive; then one that is.
    assert!(mosquitto_pub(&rig, &rig.a, "A", "room/lab/humidity", "55")
        .status
        .success());
    assert!(mosquitto_pub(&rig, &rig.a, "A", "room/lab/temp", "19")
        .status
        .success());
    let (tb, tc) = (sb.finish(), sc.finish());
    for t in [&tb, &tc] {
        assert!(t.contains("room/lab/temp 19"), "{t}");
        assert!(!t.contains("humidity"), "{t}");
    }
}

#[test]
fn unknown_certificate_and_wrong_client_id_are_refused() {
    let rig = rig("broker-auth");
    let out = mosquitto_pub(&rig, &rig.stranger, "A", "direct/b", "x");
    assert!(!out.status.success());
    // No CONNACK (as AWS IoT; see tests/sdk.rs): mosquitto reports a lost connection.
    let err =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(err.contains("connection was lost"), "{err}");
    // Right certificate (A's), wrong client id.
    let out = mosquitto_pub(&rig, &rig.a, "B", "direct/b", "x");
    assert!(!out.status.success());
    assert!(
        wait_until(PATIENCE, || {
            let log = log_text(&rig);
            log.contains(&format!(
                "certificate {} is not the certificate of any device",
                rig.stranger.id
            )) && log.contains(&format!(
                "client id \"B\" is not the thing name \"A\" of certificate {}",
                rig.a.id
            ))
        }),
        "{}",
        log_text(&rig)
    );
    assert!(wait_counter(&rig, "auth", |n| n >= 2));
    assert_eq!(counter(&rig, "auth"), 2);
    // The right pair still works.
    assert!(mosquitto_pub(&rig, &rig.a, "A", "direct/b", "x")
        .status
        .success());
}

#[test]
fn subscribe_to_a_filter_no_subscription_routes_gets_0x80() {
    let rig = rig("broker-suback");
    let out = py(
        &rig,
        &rig.b,
        "subscribe",
        &["secret/#,direct/b,room/+/temp,room/x/y", "0", "never"],
    );
    // paho reports granted QoS 0 as 0 and failure as 128.
    assert!(out.contains("suback 128 0 0 128"), "{out}");
    // C has no `direct/b` route, so it may not subscribe to it.
    let out = py(&rig, &rig.c, "subscribe", &["direct/b", "0", "never"]);
    assert!(out.contains("suback 128"), "{out}");
}

#[test]
fn oversized_payloads_are_refused_and_the_client_keeps_its_connection() {
    let rig = rig("broker-oversize");
    let sub = Bg::start(
        &rig,
        &rig.b,
        "subscribe",
        &["big/#", "100", "after"],
        "sub-b",
    );
    assert!(sub.wait_for("ready"));
    // One payload just over 128 KiB (fits the packet bound, refused by the queue), one far
    // over it (skipped without buffering), then a small one on the same connection.
    let script = r#"
import sys, time, paho.mqtt.client as mqtt
port, ca, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
c = mqtt.Client(client_id="A", protocol=mqtt.MQTTv311)
c.tls_set(ca_certs=ca, certfile=cert, keyfile=key)
c.connect("127.0.0.1", port, 60)
c.loop_start()
for size in (131073, 400000, 131072):
    c.publish("big/one", b"b" * size, qos=0)
c.publish("big/one", b"after", qos=1).wait_for_publish(60)
time.sleep(0.5)
c.disconnect(); c.loop_stop()
print("done")
"#;
    let out = Command::new(python())
        .args(["-c", script, &rig.root.mqtt_port.to_string()])
        .args([&rig.ca, &rig.a.cert, &rig.a.key])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("done"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = sub.finish();
    // Exactly the 128 KiB one and "after" arrive.
    assert!(text.contains("msg big/one after 5"), "{text}");
    assert!(text.contains("131072"), "{text}");
    assert!(
        !text.contains("131073") && !text.contains("400000"),
        "{text}"
    );
    assert!(wait_counter(&rig, "oversize", |n| n >= 2));
}

#[test]
fn garbage_and_truncated_packets_drop_only_that_client() {
    let rig = rig("broker-garbage");
    let sub = mosquitto_sub(&rig, &rig.b, &["direct/b"], 1, "sub-b");
    assert!(sub.wait_for("Subscribed"));
    for mode in [
        "garbage",
        "garbage-after-connect",
        "bad-remaining-length",
        "truncated",
        "silent",
        "keepalive",
    ] {
        let out = py(&rig, &rig.a, "raw", &[mode]);
        assert!(out.contains("closed"), "{mode}: {out}");
    }
    // Plain TCP garbage, no TLS at all.
    {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", rig.root.mqtt_port)).unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
        let mut buf = [0u8; 256];
        while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
    }
    assert!(alive(rig.daemon.pid));
    assert!(mosquitto_pub(&rig, &rig.a, "A", "direct/b", "still-here")
        .status
        .success());
    let text = sub.finish();
    assert!(text.contains("direct/b still-here"), "{text}");
    assert!(wait_counter(&rig, "keep_alive", |n| n == 1));
    assert!(
        wait_counter(&rig, "malformed", |n| n >= 3),
        "{}",
        status_json(&rig).unwrap()
    );
}

#[test]
fn a_connect_sent_with_the_last_handshake_flight_is_answered() {
    // The CONNECT arrives in the same read as the client's Finished, so rustls has it decrypted
    // before the connection loop starts and the socket will not wake it for those bytes.
    let rig = rig("broker-coalesced");
    for _ in 0..3 {
        let out = py(&rig, &rig.a, "coalesced", &[]);
        assert!(out.contains("connack 0"), "{out}\n{}", log_text(&rig));
    }
}

fn fds_and_rss(pid: i32) -> (usize, u64) {
    (fd_count(pid).unwrap(), vm_rss_kb(pid).unwrap())
}

#[test]
fn a_thousand_connect_disconnect_cycles_leave_fds_and_rss_flat() {
    let rig = rig("broker-churn");
    let (cert, key) = (
        rig.stranger.cert.to_str().unwrap(),
        rig.stranger.key.to_str().unwrap(),
    );
    // Warm up (allocator arenas, TLS tables), then measure around 1,000 cycles, every 10th
    // refused for an unknown certificate.
    let out = py(&rig, &rig.a, "churn", &["100", cert, key]);
    assert!(out.contains("ok 90") && out.contains("refused 10"), "{out}");
    assert!(wait_until(PATIENCE, || counter(&rig, "open") == 0));
    let before = fds_and_rss(rig.daemon.pid);
    let out = py(&rig, &rig.a, "churn", &["1000", cert, key]);
    assert!(
        out.contains("ok 900") && out.contains("refused 100"),
        "{out}\nbroker log without the routine lines:\n{}",
        unusual_log_lines(&rig)
    );
    assert!(wait_until(PATIENCE, || counter(&rig, "open") == 0));
    let after = fds_and_rss(rig.daemon.pid);
    eprintln!(
        "fds {} -> {}, RSS {} KiB -> {} KiB",
        before.0, after.0, before.1, after.1
    );
    assert!(after.0 <= before.0, "fd leak: {before:?} -> {after:?}");
    assert!(
        after.1 <= before.1 + 2048,
        "RSS grew: {before:?} -> {after:?}"
    );
}

fn queue_accepted(rig: &Rig) -> u64 {
    status_queue_accepted(&rig.root)
}

#[test]
fn a_flood_over_max_work_item_count_pauses_the_publisher_drops_nothing_and_rss_stays_flat() {
    let rig = rig_with("broker-flood", r#""maxWorkItemCount": 4,"#, "");
    let sub = Bg::start(
        &rig,
        &rig.b,
        "subscribe",
        &["flood/#", "1000000", "end"],
        "sub-b",
    );
    assert!(sub.wait_for("ready"));
    // One write of 20000 PUBLISHes: each TLS record the broker decrypts holds hundreds of
    // complete packets, and it offers FRAMES_PER_WAKE (32) of them before the dispatcher can
    // run, so a queue of 4 is full on every wake, however loaded the machine is: the
    // connection must pause reading, and every message must still enter the queue.
    let flood = |tag: &str| {
        let out = py(&rig, &rig.a, "burst", &["flood/x", "20000", "32", tag]);
        assert!(
            out.contains("connack 0") && out.contains("sent 20000"),
            "{out}"
        );
    };
    flood("w");
    assert!(
        wait_until(PATIENCE, || queue_accepted(&rig) >= 20000),
        "the queue did not take all 20000: {}",
        status_json(&rig).unwrap()
    );
    assert!(counter(&rig, "backpressure_pauses") > 0);
    assert!(counter(&rig, "deferred") > 0);
    let before = fds_and_rss(rig.daemon.pid);
    flood("m");
    flood("n");
    assert!(
        wait_until(PATIENCE, || queue_accepted(&rig) >= 60000),
        "{}",
        status_json(&rig).unwrap()
    );
    let after = fds_and_rss(rig.daemon.pid);
    assert_eq!(
        counter(&rig, "queue_full"),
        0,
        "a device flood drops nothing"
    );
    assert!(counter(&rig, "capacity") == 4);
    assert!(counter(&rig, "high_water") <= 4);
    eprintln!(
        "flood: fds {} -> {}, RSS {} KiB -> {} KiB",
        before.0, after.0, before.1, after.1
    );
    assert!(
        after.1 <= before.1 + 2048,
        "RSS grew: {before:?} -> {after:?}"
    );
    assert!(after.0 <= before.0);
    drop(sub);
}

#[test]
fn a_stalled_subscriber_does_not_stop_the_others() {
    let rig = rig("broker-stall");
    let stalled = Bg::start(&rig, &rig.c, "stall", &["flood/#", "120"], "stalled-c");
    assert!(stalled.wait_for("ready"), "{}", stalled.text());
    assert!(stalled.text().contains("suback 0"), "{}", stalled.text());
    // A publishes at QoS 1 and waits for B to receive each message before the next (one
    // process runs both), so B never falls behind and a loss to B could only be the stalled
    // C's fault, however loaded the machine. 320 × 64 KiB is more than the kernel buffers
    // the stalled client's socket can absorb, so C's outbox overflows.
    let n = 320;
    let out = py(
        &rig,
        &rig.a,
        "lockstep",
        &[
            rig.b.cert.to_str().unwrap(),
            rig.b.key.to_str().unwrap(),
            &rig.b.name,
            "flood/#",
            "flood/x",
            &n.to_string(),
            "65536",
        ],
    );
    assert!(out.contains("connack 0 0"), "{out}");
    assert!(
        out.contains(&format!("published {n}")) && out.contains(&format!("received {n}")),
        "B lost messages: {out}"
    );
    assert!(
        wait_counter(&rig, "slow_subscriber", |n| n > 0),
        "{}",
        status_json(&rig).unwrap()
    );
    assert_eq!(counter(&rig, "queue_full"), 0);
    drop(stalled);
}

#[test]
fn connections_over_max_connections_are_refused_at_accept() {
    let rig = rig_with("broker-maxconn", "", r#""sprig": { "maxConnections": 2 },"#);
    let b = Bg::start(&rig, &rig.b, "stall", &["direct/b", "120"], "hold-b");
    let c = Bg::start(&rig, &rig.c, "stall", &["room/#", "120"], "hold-c");
    assert!(b.wait_for("ready") && c.wait_for("ready"));
    let out = mosquitto_pub(&rig, &rig.a, "A", "direct/b", "x");
    assert!(!out.status.success());
    assert!(wait_counter(&rig, "connection_limit", |n| n >= 1));
    assert!(log_text(&rig).contains("the limit (sprig.maxConnections) is 2"));
    drop(b);
    assert!(wait_counter(&rig, "open", |n| n < 2));
    assert!(mosquitto_pub(&rig, &rig.a, "A", "direct/b", "x")
        .status
        .success());
}

#[test]
fn status_says_when_the_daemon_is_not_running() {
    let root = TestRoot::new("broker-status-off");
    let (st, out, _) = run_sprig(["status", "-r", root.root().to_str().unwrap()]);
    assert_eq!(st.code(), Some(1), "{out}");
    assert!(out.contains("not running"), "{out}");
}
