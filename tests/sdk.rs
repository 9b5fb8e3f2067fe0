//! Greengrass devices written with the AWS IoT Device SDK for Python (AWSIoTPythonSDK 1.5.4,
//! the SDK of the guide's Module 4) against the real sprig binary (SPRIG_TEST_BIN): the guide's
//! HelloWorld_Publisher → HelloWorld_Subscriber exchange, what the SDK does with sprig's
//! refusals, and a shadow request from `AWSIoTMQTTShadowClient` answered by the shadow
//! service. The device side is tests/py/sdk_device.py; every observation is asserted here.
//!
//! What the SDK sends (read from its source): MQTT 3.1.1, clean session, keep-alive 600 s,
//! username `?SDK=Python&Version=1.5.4` (metrics; sprig ignores it), the QoS the caller gives
//! (shadow requests and their subscriptions: QoS 0). Its `connect()`, `subscribe()` and
//! `publish()` succeed on any CONNACK / SUBACK / PUBACK without reading the codes. It
//! reconnects by itself (backoff 1–32 s), resubscribes what it had, and queues publishes made
//! while offline in an unbounded queue drained at 2 per second (the shadow client disables that
//! queue); sprig keeps no sessions, which the resubscribe makes invisible to the device.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;

const PUBLISHER: &str = "HelloWorld_Publisher";
const SUBSCRIBER: &str = "HelloWorld_Subscriber";
/// The guide's Module 4 subscription subject (S4: publisher → subscriber).
const TOPIC: &str = "hello/world/pubsub";
/// What the Module 4 publisher sends, as JSON with a `sequence` after it.
const MESSAGE: &str = "Hello, World! Sent from HelloWorld_Publisher";

struct Rig {
    root: TestRoot,
    daemon: Daemon,
    ca: PathBuf,
    publisher: Dev,
    subscriber: Dev,
    /// A certificate in no group.
    stranger: Dev,
}

/// The Module 4 group: both HelloWorld devices, S4, and the subscriber's shadow `get` routed
/// to and from the local shadow service (as the guide's Module 5 routes `update`).
fn group_json(p: &Dev, s: &Dev) -> String {
    let shadow = format!("$aws/things/{SUBSCRIBER}/shadow/get");
    let subs = [
        (p.thing_arn(), TOPIC.to_string(), s.thing_arn()),
        (s.thing_arn(), shadow.clone(), "GGShadowService".into()),
        (
            "GGShadowService".into(),
            format!("{shadow}/accepted"),
            s.thing_arn(),
        ),
        (
            "GGShadowService".into(),
            format!("{shadow}/rejected"),
            s.thing_arn(),
        ),
    ];
    group_json_with(&[p, s], &subs)
}

fn rig(label: &str) -> Rig {
    // TestRoot::new makes the group CA the broker's server certificate is issued from; the
    // devices use it as their root CA, as Module 4's devices use the CA discovery returns.
    let root = TestRoot::new(label);
    let ca = root.certs().join("group-ca.pem");
    let mut devs = root
        .make_devices(&[PUBLISHER, SUBSCRIBER, "stranger"])
        .into_iter();
    let (publisher, subscriber) = (devs.next().unwrap(), devs.next().unwrap());
    let stranger = devs.next().unwrap();
    root.write_group(&group_json(&publisher, &subscriber));
    let daemon = root.start_ready();
    Rig {
        root,
        daemon,
        ca,
        publisher,
        subscriber,
        stranger,
    }
}

/// `python tests/py/sdk_device.py CMD PORT CA CERT KEY CLIENT_ID ARGS...` with `dev`'s
/// certificate and key.
fn sdk_cmd(rig: &Rig, dev: &Dev, client_id: &str, cmd: &str, args: &[&str]) -> Command {
    let mut c = py_script("sdk_device.py");
    c.arg(cmd)
        .arg(rig.root.mqtt_port.to_string())
        .arg(&rig.ca)
        .arg(&dev.cert)
        .arg(&dev.key)
        .arg(client_id)
        .args(args);
    c
}

/// Runs a device script to completion (see [`run_client`]); its stdout.
fn sdk(rig: &Rig, dev: &Dev, client_id: &str, cmd: &str, args: &[&str]) -> String {
    let label = format!("{cmd} as {client_id}");
    run_client(
        sdk_cmd(rig, dev, client_id, cmd, args),
        rig.root.dir.path(),
        &label,
    )
}

fn log_text(rig: &Rig) -> String {
    common::log_text(&rig.root, &rig.daemon)
}

/// The payload Module 4's publisher sends as message number `seq`.
fn payload(seq: u32) -> String {
    format!(r#"{{"message": "{MESSAGE}", "sequence": {seq}}}"#)
}

#[test]
fn module_4_hello_world_publisher_to_subscriber_through_the_core() {
    let rig = rig("sdk-module4");
    // The subscriber also subscribes to `hello/world/#` (granted: it overlaps S4's subject), so
    // the unrouted topic below would reach it if the core did not enforce the subscriptions.
    let sub = Bg::spawn(
        sdk_cmd(
            &rig,
            &rig.subscriber,
            SUBSCRIBER,
            "subscriber",
            &[&format!("{TOPIC},hello/world/#"), r#""sequence": 3}"#],
        ),
        rig.root.dir.path().join("subscriber.out"),
    );
    assert!(sub.wait_for("ready"), "{}\n{}", sub.text(), sub.errors());
    assert!(sub.text().contains("connect True"), "{}", sub.text());
    // Sequence 0 at QoS 0 and 1 at QoS 1 along S4; 2 on a topic no subscription routes; 3 (QoS
    // 1) along S4 again: the core handles one connection's messages in order, so once 3 arrived
    // 2 has been dropped, not delayed.
    let out = sdk(
        &rig,
        &rig.publisher,
        PUBLISHER,
        "publisher",
        &[
            &format!("0:{TOPIC}"),
            &format!("1:{TOPIC}"),
            "1:hello/world/private",
            &format!("1:{TOPIC}"),
        ],
    );
    assert!(out.contains("connect True"), "{out}");
    for line in [
        format!("publish {TOPIC} qos 0 sequence 0 True"),
        format!("publish {TOPIC} qos 1 sequence 1 True"),
        "publish hello/world/private qos 1 sequence 2 True".into(),
        format!("publish {TOPIC} qos 1 sequence 3 True"),
    ] {
        assert!(out.contains(&line), "missing {line:?} in:\n{out}");
    }
    let text = sub.finish();
    for seq in [0, 1, 3] {
        let line = format!("Received message on topic {TOPIC}: {}", payload(seq));
        assert!(text.contains(&line), "missing {line:?} in:\n{text}");
    }
    assert!(!text.contains("hello/world/private"), "{text}");
    assert!(!text.contains(r#""sequence": 2"#), "{text}");
    assert!(wait_until(PATIENCE, || status_counter(
        &rig.root, "no_route"
    ) >= 1));
}

#[test]
fn the_sdk_on_refused_connections_and_refused_subscriptions() {
    let rig = rig("sdk-refusals");
    // The SDK's connect() treats any CONNACK as success (it never reads the return code), so
    // a refusal must close the connection without one, as AWS IoT does: then connect() raises
    // and basicDiscovery.py goes on to the core's next address. The SDK waits its full
    // connect timeout for a CONNACK that never comes; 10 s keeps the test short.
    let out = sdk(&rig, &rig.publisher, SUBSCRIBER, "connect", &["10"]);
    assert!(
        out.contains("connect raised connectTimeoutException"),
        "right certificate, wrong thing name:\n{out}"
    );
    let out = sdk(&rig, &rig.stranger, PUBLISHER, "connect", &["10"]);
    assert!(
        out.contains("connect raised connectTimeoutException"),
        "certificate of no group device:\n{out}"
    );
    assert!(
        wait_until(PATIENCE, || {
            let log = log_text(&rig);
            log.contains(&format!(
                "client id \"{SUBSCRIBER}\" is not the thing name \"{PUBLISHER}\""
            )) && log.contains(&format!(
                "certificate {} is not the certificate of any device",
                rig.stranger.id
            ))
        }),
        "{}",
        log_text(&rig)
    );
    assert!(wait_until(PATIENCE, || status_counter(&rig.root, "auth") >= 2));
    // The right pair connects.
    let out = sdk(&rig, &rig.publisher, PUBLISHER, "connect", &["60"]);
    assert!(out.contains("connect returned True"), "{out}");
    assert!(out.contains("publish returned True"), "{out}");

    // SUBSCRIBE: the SDK's blocking subscribe() returns True whatever the SUBACK says; the
    // SUBACK codes reach only subscribeAsync's ackCallback: 0 (sprig grants QoS 0) for S4's
    // subject, 0x80 for a filter no subscription routes to the subscriber.
    let out = sdk(
        &rig,
        &rig.subscriber,
        SUBSCRIBER,
        "suback",
        &[TOPIC, "hello/world/secret"],
    );
    assert!(out.contains("subscribe hello/world/secret True"), "{out}");
    assert!(out.contains(&format!("granted {TOPIC} 0\n")), "{out}");
    assert!(out.contains("granted hello/world/secret 128\n"), "{out}");
    assert!(
        log_text(&rig).contains("SUBSCRIBE \"hello/world/secret\" refused (0x80)"),
        "{}",
        log_text(&rig)
    );
}

#[test]
fn shadow_get_from_the_shadow_client_is_answered_by_the_local_shadow_service() {
    let rig = rig("sdk-shadow");
    // The request is routed along the GGShadowService subscription; no shadow exists yet, so
    // the SDK's callback gets `rejected` with AWS's 404 document and its own token (the SDK
    // drops responses carrying a token it did not send, so "same token True" proves the echo).
    let out = sdk(
        &rig,
        &rig.subscriber,
        SUBSCRIBER,
        "shadow-get",
        &[SUBSCRIBER, "5"],
    );
    assert!(out.contains("connect True"), "{out}");
    assert!(
        out.contains(&format!(
            "response rejected {{\"code\":404,\"message\":\"No shadow exists with name: '{SUBSCRIBER}'\""
        )),
        "expected the 404 document:\n{out}"
    );
    assert!(out.contains("same token True"), "{out}");
    assert!(
        wait_until(PATIENCE, || status_counter(&rig.root, "gets") >= 1),
        "{}",
        status_json(&rig.root).unwrap_or_default()
    );
    assert_eq!(status_counter(&rig.root, "no_route"), 0);
    assert!(
        log_text(&rig).contains(&format!("shadow get of {SUBSCRIBER} rejected: 404")),
        "{}",
        log_text(&rig)
    );
}
