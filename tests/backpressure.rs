//! Backpressure instead of acknowledge-and-drop (issue 13 §6), through the real daemon: eight
//! devices (paho-mqtt, QoS 1, many messages in flight) flood a work queue of 16 items, once
//! towards the cloud (a real mosquitto, with a memory spool large enough for all of it) and
//! once towards a device subscriber that keeps up (mosquitto_sub). Every message sprig
//! PUBACKed must arrive: 0 acknowledged-then-lost. The status file must show the connections
//! paused (the queue was full) and nothing dropped for a full queue.

mod cloud_peer;
mod common;

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use cloud_peer::{Dir, Mosquitto, Proc};
use common::*;

const DEVICES: usize = 8;
const PER_DEVICE: usize = 1000;
const ITEMS: u32 = 16;

struct Rig {
    root: TestRoot,
    cloud: Dir,
    _mosq: Mosquitto,
    _daemon: Daemon,
    ca: PathBuf,
    devs: Vec<Dev>,
    sink: Dev,
}

/// Devices `d0`..`d7` route `up/#` to the cloud and `local/#` to device `sink`;
/// maxWorkItemCount 16, a 64 MiB memory spool.
fn rig(label: &str) -> Rig {
    let cloud = Dir::new(label);
    cloud_peer::certs(&cloud.0);
    let mosq = Mosquitto::start(&cloud);
    let root = TestRoot::new(label);
    cloud_peer::use_cloud(&root, &cloud, mosq.port);
    let certs = root.certs();
    let devdir = root.dir.path().join("devices");
    fs::create_dir_all(&devdir).unwrap();
    let devs: Vec<Dev> = (0..DEVICES)
        .map(|i| make_device(&devdir, &format!("d{i}")))
        .collect();
    let sink = make_device(&devdir, "sink");
    let mut subs = Vec::new();
    for d in &devs {
        subs.push((d.thing_arn(), "up/#".to_string(), "cloud".to_string()));
        subs.push((d.thing_arn(), "local/#".to_string(), sink.thing_arn()));
    }
    let mut all: Vec<&Dev> = devs.iter().collect();
    all.push(&sink);
    let group = group_json_with(&all, &subs);
    // The spooler's settings travel as the GGCloudSpooler function's environment.
    let spooler = r#","FunctionDefinitionVersion":{"Functions":[{"FunctionArn":"arn:aws:lambda:::function:GGCloudSpooler:1",
  "FunctionConfiguration":{"Environment":{"Variables":{"GG_CONFIG_STORAGE_TYPE":"Memory","GG_CONFIG_MAX_SIZE_BYTES":"67108864"}},"Executable":"spooler","MemorySize":32768,"Pinned":true,"Timeout":3},
  "Id":"spooler"}]}}"#;
    root.write_group(&format!("{}{spooler}", &group[..group.len() - 1]));
    let config = fs::read_to_string(root.config_file()).unwrap().replace(
        r#""runtime": { "cgroup""#,
        &format!(r#""runtime": {{ "maxWorkItemCount": {ITEMS}, "cgroup""#),
    );
    assert!(config.contains("maxWorkItemCount"));
    root.write_config(&config);
    let daemon = root.start_ready();
    Rig {
        ca: certs.join("group-ca.pem"),
        root,
        cloud,
        _mosq: mosq,
        _daemon: daemon,
        devs,
        sink,
    }
}

fn py_acked(rig: &Rig, dev: &Dev, topic: &str) -> Child {
    Command::new(python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/broker_clients.py"))
        .arg("acked")
        .arg(rig.root.mqtt_port.to_string())
        .arg(&rig.ca)
        .arg(&dev.cert)
        .arg(&dev.key)
        .arg(&dev.name)
        .args([topic, &PER_DEVICE.to_string(), "100"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python (set SPRIG_TEST_PYTHON or make .venv)")
}

/// Runs the eight publishers at once; returns the payloads sprig acknowledged (`dN-I`).
fn flood(rig: &Rig, topic_prefix: &str) -> HashSet<String> {
    let children: Vec<(String, Child)> = rig
        .devs
        .iter()
        .map(|d| {
            let topic = format!("{topic_prefix}/{}", d.name);
            (d.name.clone(), py_acked(rig, d, &topic))
        })
        .collect();
    let mut acked = HashSet::new();
    for (name, child) in children {
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("connack 0"),
            "{name}: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = text.lines().find(|l| l.starts_with("acked ")).unwrap();
        acked.extend(
            line["acked ".len()..]
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|i| format!("{name}-{i}")),
        );
    }
    acked
}

/// Payloads in `lines` of `TOPIC PAYLOAD` (mosquitto_sub -v).
fn payloads(lines: &[String]) -> HashSet<String> {
    lines
        .iter()
        .filter_map(|l| l.split_once(' ').map(|(_, p)| p.to_string()))
        .collect()
}

/// The acknowledged payloads missing from what arrived.
fn lost(acked: &HashSet<String>, arrived: &HashSet<String>) -> Vec<String> {
    let mut v: Vec<String> = acked.difference(arrived).cloned().collect();
    v.sort();
    v
}

/// Waits until every acknowledged payload is among `arrived()`, then asserts it.
fn assert_all_arrived(
    rig: &Rig,
    acked: &HashSet<String>,
    arrived: impl Fn() -> HashSet<String>,
    at: &str,
) {
    assert_eq!(
        acked.len(),
        DEVICES * PER_DEVICE,
        "every message is acknowledged"
    );
    wait_until(PATIENCE, || lost(acked, &arrived()).is_empty());
    let missing = lost(acked, &arrived());
    assert!(
        missing.is_empty(),
        "{} acknowledged messages never reached {at}, e.g. {:?}\n{}",
        missing.len(),
        &missing[..missing.len().min(10)],
        status_json(&rig.root).unwrap()
    );
}

fn assert_paused_and_nothing_dropped(rig: &Rig) {
    // The status file is rewritten about once a second: wait until it has seen the flood.
    let all = (DEVICES * PER_DEVICE) as u64;
    assert!(
        wait_until(PATIENCE, || status_queue_accepted(&rig.root) >= all),
        "{:?}",
        status_json(&rig.root)
    );
    let st = status_json(&rig.root).unwrap();
    assert!(
        status_counter(&rig.root, "backpressure_pauses") > 0,
        "the queue of {ITEMS} never filled, backpressure was not exercised: {st}"
    );
    assert_eq!(status_counter(&rig.root, "queue_full"), 0, "{st}");
    assert!(
        status_counter(&rig.root, "high_water") <= ITEMS as u64,
        "{st}"
    );
}

#[test]
fn a_qos1_flood_to_the_cloud_loses_nothing_acknowledged() {
    let rig = rig("bp-cloud");
    let _sub = cloud_peer::cloud_sub(&rig.cloud, &rig._mosq, "up/#", "sub.out");
    assert!(
        wait_until(PATIENCE, || status_json(&rig.root)
            .unwrap_or_default()
            .contains("\"state\":\"connected\"")),
        "{:?}",
        status_json(&rig.root)
    );
    let acked = flood(&rig, "up");
    assert_eq!(
        acked.len(),
        DEVICES * PER_DEVICE,
        "every message is acknowledged"
    );
    let arrived = || payloads(&cloud_peer::lines(&rig.cloud, "sub.out"));
    wait_until(PATIENCE, || lost(&acked, &arrived()).is_empty());
    let missing = lost(&acked, &arrived());
    assert!(
        missing.is_empty(),
        "{} acknowledged messages never reached the cloud, e.g. {:?}\n{}",
        missing.len(),
        &missing[..missing.len().min(10)],
        status_json(&rig.root).unwrap()
    );
    assert_paused_and_nothing_dropped(&rig);
}

#[test]
fn a_qos1_flood_to_a_device_that_keeps_up_loses_nothing_acknowledged() {
    let rig = rig("bp-local");
    let out = rig.root.dir.path().join("sink.out");
    let _sink = Proc(
        Command::new("stdbuf")
            .args(["-oL", "mosquitto_sub"])
            .args(mosquitto_device_args(
                rig.root.mqtt_port,
                &rig.ca,
                &rig.sink.cert,
                &rig.sink.key,
                "sink",
            ))
            .args(["-d", "-v", "-t", "local/#"])
            .stdout(fs::File::create(&out).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let text = || fs::read_to_string(&out).unwrap_or_default();
    assert!(
        wait_until(PATIENCE, || text().contains("SUBACK")),
        "{}",
        text()
    );
    let acked = flood(&rig, "local");
    assert_eq!(
        acked.len(),
        DEVICES * PER_DEVICE,
        "every message is acknowledged"
    );
    let arrived = || {
        let lines: Vec<String> = text()
            .lines()
            .filter(|l| l.starts_with("local/"))
            .map(str::to_owned)
            .collect();
        payloads(&lines)
    };
    assert_all_arrived(&rig, &acked, arrived, "the subscriber");
    assert_eq!(status_counter(&rig.root, "slow_subscriber"), 0);
    assert_paused_and_nothing_dropped(&rig);
}
