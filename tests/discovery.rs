//! The local Discovery API (issue 11) against the real sprig binary (SPRIG_TEST_BIN), driven by
//! the stock AWSIoTPythonSDK 1.5.4 (`DiscoveryInfoProvider`, `DiscoveryInfo`,
//! `AWSIoTMQTTClient`; tests/py/discovery_device.py), curl, and raw TLS / TCP clients.
//!
//! The devices trust the group CA (`certs/group-ca.pem`) for discovery: the discovery endpoint
//! presents the local MQTT server certificate, which sprig issues from that CA.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;

use common::*;

const PUBLISHER: &str = "HelloWorld_Publisher";
const SUBSCRIBER: &str = "HelloWorld_Subscriber";
const TOPIC: &str = "hello/world/pubsub";
const CORE_ARN: &str = "arn:aws:iot:us-east-1:123456789012:thing/sprig-test-core";
/// A DNS name configured as a connectivity hostAddress: the server certificate must name it.
const DNS_HOST: &str = "sprig-core.test";

struct Rig {
    root: TestRoot,
    daemon: Daemon,
    port: u16,
    ca: PathBuf,
    publisher: Dev,
    subscriber: Dev,
    stranger: Dev,
}

/// A root whose group has both HelloWorld devices and Module 4's subscription, with discovery on
/// a free port and `sprig` keys `extra` (inside the `sprig` object; `MQTT_PORT` in it becomes
/// the root's ggMqttPort).
fn rig(label: &str, extra: &str) -> Rig {
    let root = TestRoot::new(label);
    let port = free_port();
    let extra = extra.replace("MQTT_PORT", &root.mqtt_port.to_string());
    let config = root.default_config().replacen(
        '{',
        &format!(r#"{{ "sprig": {{ "discoveryPort": {port}{extra} }},"#),
        1,
    );
    root.write_config(&config);
    let mut devs = root
        .make_devices(&[PUBLISHER, SUBSCRIBER, "stranger"])
        .into_iter();
    let (publisher, subscriber) = (devs.next().unwrap(), devs.next().unwrap());
    let stranger = devs.next().unwrap();
    let subs = [(
        publisher.thing_arn(),
        TOPIC.to_string(),
        subscriber.thing_arn(),
    )];
    root.write_group(&group_json_with(&[&publisher, &subscriber], &subs));
    let daemon = root.start_ready();
    Rig {
        ca: root.certs().join("group-ca.pem"),
        root,
        daemon,
        port,
        publisher,
        subscriber,
        stranger,
    }
}

fn device_cmd(rig: &Rig, dev: &Dev, cmd: &str, thing: &str, args: &[&str]) -> Command {
    let mut c = py_script("discovery_device.py");
    c.arg(cmd)
        .arg("127.0.0.1")
        .arg(rig.port.to_string())
        .arg(&rig.ca)
        .arg(&dev.cert)
        .arg(&dev.key)
        .arg(thing)
        .args(args);
    c
}

/// Runs a device command to completion (see [`run_client`]); its stdout.
fn device(rig: &Rig, dev: &Dev, cmd: &str, thing: &str, args: &[&str]) -> String {
    let label = format!("{cmd} as {}", dev.name);
    run_client(
        device_cmd(rig, dev, cmd, thing, args),
        rig.root.dir.path(),
        &label,
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `curl -sS -w ' %{http_code}'` with a device certificate and the group CA; (ok, stdout).
fn curl(rig: &Rig, dev: &Dev, url: &str, extra: &[&str]) -> (bool, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-w", " %{http_code}", "--cacert"])
        .arg(&rig.ca)
        .arg("--cert")
        .arg(&dev.cert)
        .arg("--key")
        .arg(&dev.key)
        .args(extra)
        .arg(url)
        .output()
        .expect("curl");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn discovery_counter(rig: &Rig, key: &str) -> u64 {
    status_counter(&rig.root, key)
}

#[test]
fn module_4_flow_discover_then_exchange_a_message_with_the_returned_ca() {
    let conn = format!(
        r#", "connectivity": [
            {{"hostAddress": "127.0.0.1", "portNumber": MQTT_PORT, "metadata": "loopback"}},
            {{"hostAddress": "{DNS_HOST}", "portNumber": MQTT_PORT, "id": "by-name"}}]"#
    );
    let rig = rig("disc-m4", &conn);
    let group_ca = std::fs::read_to_string(&rig.ca).unwrap();

    // The subscriber: discovery, the CA written to a file, MQTT to the first address.
    let sub = Bg::spawn(
        device_cmd(
            &rig,
            &rig.subscriber,
            "basic",
            SUBSCRIBER,
            &["subscribe", TOPIC],
        ),
        rig.root.dir.path().join("subscriber.out"),
    );
    assert!(
        sub.wait_for("ready"),
        "{}\n{}\n{}",
        sub.text(),
        sub.errors(),
        log_text(&rig.root, &rig.daemon)
    );
    let text = sub.text();
    let mqtt = rig.root.mqtt_port;
    // What the SDK's DiscoveryInfo made of the document.
    let core_line = format!(" {CORE_ARN}\n");
    assert!(text.contains(&core_line), "{text}");
    assert!(
        text.contains(&format!(
            "connectivity MANUAL_127.0.0.1_0 127.0.0.1 {mqtt} int 'loopback'"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("connectivity by-name {DNS_HOST} {mqtt} int ''")),
        "{text}"
    );
    let ca_line = text.lines().find(|l| l.starts_with("ca ")).unwrap();
    let (group_id, ca_json) = ca_line[3..].split_once(' ').unwrap();
    // No GroupId in group.json: a stable id derived from the core's name, UUID-shaped.
    assert_eq!(group_id.len(), 36, "{group_id}");
    assert!(
        text.contains(&format!("core {group_id} {CORE_ARN}")),
        "{text}"
    );
    assert_eq!(ca_json, json_string(&group_ca));
    assert!(
        text.contains(&format!("connected 127.0.0.1:{mqtt}")),
        "{text}"
    );

    let out = device(
        &rig,
        &rig.publisher,
        "basic",
        PUBLISHER,
        &["publish", TOPIC],
    );
    assert!(
        out.contains(&format!("connected 127.0.0.1:{mqtt}")),
        "{out}"
    );
    for seq in 0..4 {
        assert!(out.contains(&format!("publish {seq} True")), "{out}");
    }
    let text = sub.finish();
    for seq in 0..4 {
        let needle = format!(r#""sequence": {seq}}}"#);
        assert!(
            text.contains(&format!("Received message on topic {TOPIC}: "))
                && text.contains(&needle),
            "missing {needle} in:\n{text}"
        );
    }
    assert!(wait_until(PATIENCE, || discovery_counter(&rig, "served") >= 2));

    // curl with a device certificate, checking the server certificate against the group CA by
    // the configured DNS name (so that name is among its SANs).
    let url = format!(
        "https://{DNS_HOST}:{}/greengrass/discover/thing/{PUBLISHER}",
        rig.port
    );
    let resolve = format!("{DNS_HOST}:{}:127.0.0.1", rig.port);
    let (ok, out) = curl(&rig, &rig.publisher, &url, &["--resolve", &resolve]);
    assert!(ok && out.ends_with(" 200"), "{out}");
    assert!(out.starts_with(r#"{"GGGroups":[{"GGGroupId":""#), "{out}");
    assert!(out.contains(&format!(r#""PortNumber":{mqtt}"#)), "{out}");
}

/// `s` as a JSON string literal (what Python's json.dumps prints for it).
fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[test]
fn refusals_teach_nothing_and_the_endpoint_keeps_serving() {
    let rig = rig("disc-refuse", "");
    let (p, stranger) = (&rig.publisher, &rig.stranger);

    // The stock SDK: a certificate in no group, and a device asking for another thing's name.
    // The SDK raises DiscoveryFailure with the body for 403 (it maps only 400/401/404/429).
    let out = device(&rig, stranger, "discover", "stranger", &[]);
    assert!(out.starts_with("refused DiscoveryFailure"), "{out}");
    assert!(
        !out.contains(PUBLISHER) && !out.contains("GGGroups"),
        "{out}"
    );
    let out = device(&rig, p, "discover", SUBSCRIBER, &[]);
    assert!(out.starts_with("refused DiscoveryFailure"), "{out}");
    assert!(out.contains("only its own thing name"), "{out}");
    // A stranger gets 403 whatever it asks, so it cannot even map the paths.
    let (_, out) = curl(
        &rig,
        stranger,
        &format!("https://127.0.0.1:{}/nope", rig.port),
        &[],
    );
    assert!(out.ends_with(" 403"), "{out}");

    // Wrong method and path (curl), garbage and an oversized head (raw TLS).
    let base = format!("https://localhost:{}/greengrass/discover/thing/", rig.port);
    let (_, out) = curl(&rig, p, &format!("{base}{PUBLISHER}"), &["-X", "POST"]);
    assert!(out.ends_with(" 405"), "{out}");
    let (_, out) = curl(
        &rig,
        p,
        &format!("https://localhost:{}/greengrass/x", rig.port),
        &[],
    );
    assert!(out.ends_with(" 404"), "{out}");
    let out = device(
        &rig,
        p,
        "raw",
        PUBLISHER,
        &[&hex(b"\x00\x01garbage\r\n\r\n")],
    );
    assert!(out.contains("status HTTP/1.1 400 Bad Request"), "{out}");
    let mut big = b"GET /greengrass/discover/thing/HelloWorld_Publisher HTTP/1.1\r\nx: ".to_vec();
    big.resize(8 * 1024, b'a');
    let out = device(&rig, p, "raw", PUBLISHER, &[&hex(&big)]);
    assert!(out.contains("status HTTP/1.1 400 Bad Request"), "{out}");

    // Plain HTTP on the HTTPS port: told so in the clear; no certificate: no handshake.
    let req = format!("GET /greengrass/discover/thing/{PUBLISHER} HTTP/1.1\r\n\r\n");
    let out = device(&rig, p, "plain", PUBLISHER, &[&hex(req.as_bytes())]);
    assert!(out.contains("status HTTP/1.1 400 Bad Request"), "{out}");
    assert!(out.contains("https://"), "{out}");
    let out = device(&rig, p, "nocert", PUBLISHER, &[]);
    assert!(!out.contains("GGGroups"), "{out}");

    // Still serving: the SDK's own request with ALPN as on port 443, and the stock provider.
    let req = format!(
        "GET /greengrass/discover/thing/{PUBLISHER} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
        rig.port
    );
    let out = device(
        &rig,
        p,
        "raw",
        PUBLISHER,
        &[&hex(req.as_bytes()), "x-amzn-http-ca"],
    );
    assert!(out.contains("alpn x-amzn-http-ca"), "{out}");
    assert!(out.contains("status HTTP/1.1 200 OK"), "{out}");
    let out = device(&rig, p, "discover", PUBLISHER, &[]);
    // No sprig.connectivity: every interface address with ggMqttPort, then 127.0.0.1.
    let mqtt = rig.root.mqtt_port;
    assert!(
        out.contains(&format!("127.0.0.1 {mqtt} int ''")) && out.contains("connectivity AUTOIP_"),
        "{out}"
    );
    let (ok, out) = curl(&rig, p, &format!("{base}{PUBLISHER}"), &[]);
    assert!(ok && out.ends_with(" 200"), "{out}");

    for (key, at_least) in [
        ("served", 3),
        ("refused_forbidden", 3),
        ("refused_method", 1),
        ("refused_not_found", 1),
        ("refused_bad_request", 2),
        ("refused_plain_http", 1),
        ("refused_handshake", 1),
    ] {
        assert!(
            wait_until(PATIENCE, || discovery_counter(&rig, key) >= at_least),
            "{key} < {at_least}: {}",
            status_json(&rig.root).unwrap_or_default()
        );
    }
    let log = log_text(&rig.root, &rig.daemon);
    assert!(
        log.contains("is not a device of this core's group"),
        "{log}"
    );
    assert!(rig.daemon.pid > 0 && alive(rig.daemon.pid));
}

#[test]
fn connections_are_bounded_in_number_and_time() {
    let rig = rig("disc-bounds", "");
    // A device that completes the TLS handshake and then says nothing is closed after
    // DISCOVERY_FIRST_BYTE_SECS (counted as timed out); it holds one of the 16 slots till then.
    let idle_tls = Bg::spawn(
        device_cmd(&rig, &rig.publisher, "raw", PUBLISHER, &[""]),
        rig.root.dir.path().join("idle-tls.out"),
    );
    assert!(idle_tls.wait_for("alpn "), "{}", idle_tls.errors());
    // 15 more that never start TLS fill the other slots (each is closed after the handshake
    // timeout, 10 s: long enough for what follows).
    let addr = ("127.0.0.1", rig.port);
    let idle: Vec<TcpStream> = (0..15).map(|_| TcpStream::connect(addr).unwrap()).collect();
    assert!(
        wait_until(PATIENCE, || discovery_counter(&rig, "open_connections")
            == 16),
        "{}",
        status_json(&rig.root).unwrap_or_default()
    );
    // The 17th is closed at accept, and counted.
    let mut extra = TcpStream::connect(addr).unwrap();
    extra
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert!(matches!(extra.read(&mut buf), Ok(0) | Err(_)));
    assert!(wait_until(PATIENCE, || discovery_counter(
        &rig,
        "refused_connection_limit"
    ) >= 1));
    drop(idle);
    // The idle TLS device is let go without a reply; the endpoint serves again.
    let out = idle_tls.finish();
    assert!(!out.contains("HTTP/1.1"), "{out}");
    assert!(wait_until(PATIENCE, || discovery_counter(
        &rig,
        "timed_out"
    ) >= 1));
    let out = device(&rig, &rig.publisher, "discover", PUBLISHER, &[]);
    assert!(out.contains("connectivity AUTOIP_"), "{out}");
}
