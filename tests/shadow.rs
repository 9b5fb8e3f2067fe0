//! The local shadow service (issue 9) against the real binary, with real clients: the stock
//! AWS IoT Device SDK for Python's shadow client playing the guide's Module 5 traffic light,
//! a raw MQTT client (the same SDK's plain client) sending exact request bodies for every
//! rejection code and the merge/version rules, and restarts (`SIGTERM` and `kill -9` in the
//! middle of a burst) that must never take a shadow's version back.
//! The clients are tests/py/shadow_device.py; every observation is asserted here.

mod cloud_peer;
mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use common::*;

const LIGHT: &str = "GG_TrafficLight";
const SWITCH: &str = "GG_Switch";
const OBSERVER: &str = "GG_Observer";

struct Rig {
    root: TestRoot,
    daemon: Daemon,
    ca: PathBuf,
    light: Dev,
    switch: Dev,
    observer: Dev,
}

/// Module 5's group: the switch and the light talk to the shadow service about the light's
/// shadow (and the light about its own: the requests are routed by topic, any thing's shadow);
/// the observer (the guide's GG_Car_Aggregator Lambda, here a device) gets `update/documents`.
fn group_json(l: &Dev, s: &Dev, o: &Dev) -> String {
    let mut subs = shadow_service_subs(&[l, s]);
    subs.push((
        "GGShadowService".to_string(),
        format!("$aws/things/{LIGHT}/shadow/update/documents"),
        o.thing_arn(),
    ));
    group_json_with(&[l, s, o], &subs)
}

fn rig(label: &str) -> Rig {
    rig_with(label, |_, _| {})
}

/// A rig whose root `prepare` may change (config.json, certificates, group.json) before the
/// daemon starts; it gets the root and the three devices.
fn rig_with(label: &str, prepare: impl FnOnce(&TestRoot, [&Dev; 3])) -> Rig {
    let root = TestRoot::new(label);
    let ca = root.certs().join("group-ca.pem");
    let mut devs = root.make_devices(&[LIGHT, SWITCH, OBSERVER]).into_iter();
    let (light, switch, observer) = (
        devs.next().unwrap(),
        devs.next().unwrap(),
        devs.next().unwrap(),
    );
    root.write_group(&group_json(&light, &switch, &observer));
    prepare(&root, [&light, &switch, &observer]);
    let daemon = root.start_ready();
    Rig {
        root,
        daemon,
        ca,
        light,
        switch,
        observer,
    }
}

fn cmd(rig: &Rig, dev: &Dev, what: &str, args: &[&str]) -> Command {
    let mut c = py_script("shadow_device.py");
    c.arg(what)
        .arg(rig.root.mqtt_port.to_string())
        .arg(&rig.ca)
        .arg(&dev.cert)
        .arg(&dev.key)
        .arg(&dev.name)
        .args(args);
    c
}

fn out_path(rig: &Rig, what: &str) -> PathBuf {
    static RUNS: AtomicU32 = AtomicU32::new(0);
    let n = RUNS.fetch_add(1, Ordering::Relaxed);
    rig.root.dir.path().join(format!("{what}-{n}.out"))
}

/// `dev` listening to the light's `shadow/<suffix>` until `count` messages came; ready.
fn listen(rig: &Rig, dev: &Dev, suffix: &str, count: u32) -> Bg {
    let topic = format!("$aws/things/{LIGHT}/shadow/{suffix}");
    let bg = Bg::spawn(
        cmd(rig, dev, "listen", &[&topic, &count.to_string()]),
        out_path(rig, "listen"),
    );
    assert!(bg.wait_for("ready"), "{}", bg.errors());
    bg
}

/// Runs a client to completion (bounded) and returns its stdout.
fn run(rig: &Rig, dev: &Dev, what: &str, args: &[&str]) -> String {
    let bg = Bg::spawn(cmd(rig, dev, what, args), out_path(rig, what));
    finish(bg)
}

fn finish(mut bg: Bg) -> String {
    let done = wait_until(PATIENCE * 3, || matches!(bg.child.try_wait(), Ok(Some(_))));
    let text = bg.text();
    assert!(
        done && !text.contains("error "),
        "client failed or hung:\n{text}\n--- stderr ---\n{}",
        bg.errors()
    );
    text
}

/// Sends `requests` ((op, body)) as the light, one at a time; the `reply SUFFIX BODY` lines.
fn raw(rig: &Rig, requests: &[(&str, &str)]) -> Vec<(String, String)> {
    raw_with_gap(rig, requests, "-1")
}

fn requests_file(rig: &Rig, requests: &[(&str, &str)]) -> PathBuf {
    let list: Vec<String> = requests
        .iter()
        .map(|(op, body)| format!("[{},{}]", json_str(op), json_str(body)))
        .collect();
    let path = out_path(rig, "requests");
    std::fs::write(&path, format!("[{}]", list.join(","))).unwrap();
    path
}

fn raw_with_gap(rig: &Rig, requests: &[(&str, &str)], gap: &str) -> Vec<(String, String)> {
    raw_as(rig, &rig.light, LIGHT, requests, gap)
}

/// `requests` from device `dev` to `thing`'s shadow.
fn raw_as(
    rig: &Rig,
    dev: &Dev,
    thing: &str,
    requests: &[(&str, &str)],
    gap: &str,
) -> Vec<(String, String)> {
    let file = requests_file(rig, requests);
    let text = run(rig, dev, "raw", &[thing, file.to_str().unwrap(), gap]);
    replies(&text)
}

fn replies(text: &str) -> Vec<(String, String)> {
    shadow_replies(text)
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// The integer after `"key":` in `body`.
fn int_field(body: &str, key: &str) -> Option<u64> {
    let at = body.find(&format!("\"{key}\":"))? + key.len() + 3;
    body[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .ok()
}

#[test]
fn module_5_traffic_light_with_the_stock_sdk_shadow_client() {
    let rig = rig("shadow-module5");
    let light = Bg::spawn(
        cmd(&rig, &rig.light, "light", &[LIGHT, "3"]),
        out_path(&rig, "light"),
    );
    let observer = listen(&rig, &rig.observer, "update/documents", 6);
    assert!(light.wait_for("ready"), "{}", light.errors());
    let switch = run(&rig, &rig.switch, "switch", &[LIGHT, "G,Y,R"]);
    for c in ["G", "Y", "R"] {
        assert!(
            switch.contains(&format!("update accepted property {c} version")),
            "{switch}"
        );
    }
    let light = finish(light);
    // The light saw each change as a delta with the switch's token, and its reports were
    // accepted (the SDK drops responses with a token it did not send and deltas whose version
    // does not grow, so these lines prove both).
    for c in ["G", "Y", "R"] {
        assert!(
            light.contains(&format!("delta property {c} version")),
            "{light}"
        );
        assert!(light.contains(&format!("reported {c} version")), "{light}");
    }
    assert!(
        !light.contains("token -"),
        "deltas carry the clientToken:\n{light}"
    );
    let observer = finish(observer);
    let docs: Vec<&str> = observer.lines().filter(|l| l.starts_with("msg ")).collect();
    assert_eq!(docs.len(), 6, "{observer}");
    // The last documents message: the light's report of R, after the switch's desired R.
    let last = docs[5];
    assert!(
        last.contains(
            r#""current":{"state":{"desired":{"property":"R"},"reported":{"property":"R"}}"#
        ),
        "{last}"
    );
    assert!(
        last.contains(
            r#""previous":{"state":{"desired":{"property":"R"},"reported":{"property":"Y"}}"#
        ),
        "{last}"
    );
    assert_eq!(int_field(last, "version"), Some(5), "{last}"); // previous.version
    assert!(last.contains(r#""version":6}"#), "{last}");
    // The status file is rewritten once a second.
    assert!(
        wait_until(PATIENCE, || status_counter(&rig.root, "updates") == 6),
        "{}",
        status_json(&rig.root).unwrap_or_default()
    );
    let status = status_json(&rig.root).unwrap();
    assert!(status.contains(r#""shadows":{"count":1,"#), "{status}");
}

#[test]
fn every_rejection_code_and_the_merge_rules_over_mqtt() {
    let rig = rig("shadow-rules");
    let long_token = "t".repeat(65);
    let bad_token = format!(r#"{{"state":{{}},"clientToken":"{long_token}"}}"#);
    let seven =
        r#"{"state":{"desired":{"a":{"b":{"c":{"d":{"e":{"f":{"g":1}}}}}}}},"clientToken":"deep"}"#;
    let big = format!(
        r#"{{"state":{{"reported":{{"k":"{}"}}}},"clientToken":"big"}}"#,
        "x".repeat(8200)
    );
    let r = raw(
        &rig,
        &[
            ("get", r#"{"clientToken":"g0"}"#),
            ("delete", ""),
            ("update", "{not json"),
            ("update", r#"{"clientToken":"m"}"#),
            ("update", r#"{"state":[1],"clientToken":"s"}"#),
            ("update", r#"{"state":{"desired":"x"},"clientToken":"d"}"#),
            ("update", r#"{"state":{"reported":3},"clientToken":"r"}"#),
            ("update", r#"{"state":{},"version":"2","clientToken":"v"}"#),
            ("update", &bad_token),
            ("update", seven),
            ("update", &big),
            // Accepted: version 1, then a nested merge with a null delete (version 2).
            (
                "update",
                r#"{"state":{"reported":{"a":{"b":1,"c":2},"d":3}},"clientToken":"u1"}"#,
            ),
            (
                "update",
                r#"{"state":{"reported":{"a":{"b":null,"e":4},"d":null}},"version":1,"clientToken":"u2"}"#,
            ),
            (
                "update",
                r#"{"state":{"reported":{}},"version":1,"clientToken":"c"}"#,
            ),
            ("get", r#"{"clientToken":"g1"}"#),
            ("delete", r#"{"clientToken":"del"}"#),
            ("get", r#"{"clientToken":"g2"}"#),
            (
                "update",
                r#"{"state":{"desired":{"x":1}},"clientToken":"again"}"#,
            ),
        ],
    );
    let expect: &[(&str, &str)] = &[
        (
            "get/rejected",
            r#""code":404,"message":"No shadow exists with name: 'GG_TrafficLight'""#,
        ),
        ("delete/rejected", r#""code":404"#),
        ("update/rejected", r#""code":400,"message":"Invalid JSON""#),
        (
            "update/rejected",
            r#""code":400,"message":"Missing required node: state""#,
        ),
        (
            "update/rejected",
            r#""code":400,"message":"State node must be an object""#,
        ),
        (
            "update/rejected",
            r#""code":400,"message":"Desired node must be an object""#,
        ),
        (
            "update/rejected",
            r#""code":400,"message":"Reported node must be an object""#,
        ),
        (
            "update/rejected",
            r#""code":400,"message":"Invalid version""#,
        ),
        (
            "update/rejected",
            r#""code":400,"message":"Invalid clientToken""#,
        ),
        (
            "update/rejected",
            r#""code":400,"message":"JSON contains too many levels of nesting; maximum is 6""#,
        ),
        (
            "update/rejected",
            r#""code":413,"message":"The payload exceeds the maximum size allowed""#,
        ),
        ("update/accepted", r#""version":1"#),
        ("update/accepted", r#""version":2"#),
        (
            "update/rejected",
            r#""code":409,"message":"Version conflict","#,
        ),
        (
            "get/accepted",
            r#"{"state":{"reported":{"a":{"c":2,"e":4}}},"metadata":{"reported":{"a":{"c":{"timestamp":"#,
        ),
        ("delete/accepted", r#"{"version":2,"#),
        ("get/rejected", r#""code":404"#),
        ("update/accepted", r#""version":3"#),
    ];
    assert_eq!(r.len(), expect.len(), "{r:#?}");
    for ((topic, body), (want_topic, want)) in r.iter().zip(expect) {
        assert_eq!(topic, want_topic, "{body}");
        assert!(body.contains(want), "{want_topic}: want {want} in {body}");
    }
    // Tokens are echoed on rejections that could read one, never an invalid one.
    assert!(r[0].1.contains(r#""clientToken":"g0""#));
    assert!(r[13].1.contains(r#""clientToken":"c""#));
    assert!(!r[8].1.contains(r#""clientToken":"#), "{}", r[8].1);
    // Each rejection is logged with thing, operation and code; the counters add up.
    let log = log_text(&rig.root, &rig.daemon);
    assert!(
        log.contains("shadow update of GG_TrafficLight rejected: 409 Version conflict"),
        "{log}"
    );
    let want =
        r#""rejected":13,"rejected_400":8,"rejected_404":3,"rejected_409":1,"rejected_413":1,"#;
    assert!(
        wait_until(PATIENCE, || status_json(&rig.root).unwrap().contains(want)),
        "{}",
        status_json(&rig.root).unwrap()
    );
    let st = status_json(&rig.root).unwrap();
    assert!(!st.contains("shadow_not_built"), "{st}");
    // The human form: one line.
    let (_, text, _) = rig.root.sprig("status", &[]);
    let line = text
        .lines()
        .find(|l| l.starts_with("shadows: "))
        .unwrap_or("");
    assert!(line.starts_with("shadows: count 1, bytes "), "{text}");
    assert!(
        line.contains("rejected 13, rejected_400 8, rejected_404 3,"),
        "{text}"
    );
}

#[test]
fn restart_and_kill_9_in_a_burst_never_take_a_version_back() {
    let mut rig = rig("shadow-restart");
    let upd = |i: u32| format!(r#"{{"state":{{"reported":{{"seq":{i}}}}},"clientToken":"b{i}"}}"#);
    let first: Vec<String> = (0..3).map(upd).collect();
    let reqs: Vec<(&str, &str)> = first.iter().map(|b| ("update", b.as_str())).collect();
    assert_eq!(raw(&rig, &reqs).len(), 3);
    // A clean restart keeps the shadow: the next update is version 4.
    rig.daemon.signal(libc::SIGTERM);
    assert!(rig.daemon.wait_exit(PATIENCE).is_some());
    rig.daemon = rig.root.start_ready();
    let r = raw(&rig, &[("update", &upd(3))]);
    assert!(r[0].1.contains(r#""version":4"#), "{r:?}");

    // A burst of updates, kill -9 in the middle of it.
    let burst: Vec<String> = (4..400).map(upd).collect();
    let reqs: Vec<(&str, &str)> = burst.iter().map(|b| ("update", b.as_str())).collect();
    let file = requests_file(&rig, &reqs);
    let bg = Bg::spawn(
        cmd(
            &rig,
            &rig.light,
            "raw",
            &[LIGHT, file.to_str().unwrap(), "0.002"],
        ),
        out_path(&rig, "burst"),
    );
    assert!(
        wait_until(PATIENCE, || bg.text().matches("update/accepted").count()
            >= 40),
        "{}",
        bg.text()
    );
    rig.daemon.signal(libc::SIGKILL);
    assert!(rig.daemon.wait_exit(PATIENCE).is_some());
    let text = finish(bg);
    let acked = replies(&text)
        .iter()
        .filter(|(t, _)| t == "update/accepted")
        .filter_map(|(_, b)| int_field(b, "version"))
        .max()
        .unwrap();
    // Back up: the shadow reads, its version is at least the last one acknowledged, and its
    // state is the one that version wrote (update number v-1 set seq v-1).
    rig.daemon = rig.root.start_ready();
    let r = raw(&rig, &[("get", r#"{"clientToken":"after"}"#)]);
    assert_eq!(r[0].0, "get/accepted", "{r:?}");
    let v = int_field(&r[0].1, "version").unwrap();
    assert!(
        v >= acked,
        "version {v} after kill -9, {acked} was acknowledged"
    );
    assert!(
        r[0].1
            .contains(&format!(r#""reported":{{"seq":{}}}"#, v - 1)),
        "{r:?}"
    );
    let r = raw(&rig, &[("update", &upd(1000))]);
    assert!(r[0].1.contains(&format!(r#""version":{}"#, v + 1)), "{r:?}");
    // No temporary or damaged files were left behind by the next start.
    let dir = rig.root.write_dir().join("ggc/var/state/shadows");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec![format!("{LIGHT}.json")], "{names:?}");
}

#[test]
fn a_damaged_shadow_file_is_set_aside_and_the_core_starts() {
    let root = TestRoot::new("shadow-corrupt");
    let light = root.make_devices(&[LIGHT]).remove(0);
    root.write_group(&group_json_with(
        &[&light],
        &[] as &[(String, String, String)],
    ));
    let dir = root.write_dir().join("ggc/var/state/shadows");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{LIGHT}.json")), b"{\"version\":3,\"del").unwrap();
    let daemon = root.start_ready();
    assert!(dir.join(format!("{LIGHT}.json.corrupt")).exists());
    assert!(
        wait_until(PATIENCE, || log_text(&root, &daemon).contains("is damaged")),
        "{}",
        log_text(&root, &daemon)
    );
}

/// Sync against mosquitto standing in for AWS IoT Core, with tests/py/cloud_shadow.py playing
/// the cloud shadow service and the console: the light syncs (SyncShadow true), the switch
/// does not.
#[test]
fn sync_with_the_cloud_shadow_converges_after_an_outage_without_echo() {
    use cloud_peer::{Dir, Mosquitto};
    let cloud = Dir::new("shadow-sync");
    cloud_peer::certs(&cloud.0);
    let mut mosq = Mosquitto::start(&cloud);
    let console = cloud.path("console.txt");
    let mut svc = py_script("cloud_shadow.py");
    svc.arg(mosq.port.to_string())
        .arg(cloud.path("ca.pem"))
        .arg(cloud.path("cloudclient.pem"))
        .arg(cloud.path("cloudclient.key"))
        .arg(&console);
    let service = Bg::spawn(svc, cloud.path("service.out"));
    assert!(service.wait_for("ready"), "{}", service.errors());
    let port = mosq.port;
    let rig = rig_with("shadow-sync", |root, [light, ..]| {
        let entry = light.group_entry();
        let group = std::fs::read_to_string(root.group_file()).unwrap();
        root.write_group(&group.replace(&entry, &entry.replace(":false", ":true")));
        cloud_peer::use_cloud_retrying(root, &cloud, port, 1);
    });
    let sync_field = |key: &str| -> String {
        let st = status_json(&rig.root).unwrap_or_default();
        let at = st
            .find(&format!("\"{key}\":"))
            .map_or(0, |i| i + key.len() + 3);
        st[at..]
            .chars()
            .take_while(|c| *c != ',' && *c != '}')
            .collect()
    };
    let cloud_text = || service.text();
    // The cloud's latest state line for a thing.
    let cloud_state = |thing: &str| -> String {
        cloud_text()
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("shadow {thing} ")))
            .filter_map(|l| l.split_once(' ').map(|(_version, state)| state))
            .next_back()
            .unwrap_or("")
            .to_string()
    };
    let core_requests = || {
        cloud_text()
            .lines()
            .filter(|l| l.starts_with(&format!("req {LIGHT} update")))
            .count()
    };
    assert!(
        wait_until(PATIENCE, || sync_field("link") == "\"up\""),
        "{}",
        status_json(&rig.root).unwrap_or_default()
    );

    // 1. A local change goes up; the unsynced switch's own shadow never does.
    let up =
        |requests: &[(&str, &str)], thing: &str| raw_as(&rig, &rig.switch, thing, requests, "-1");
    let r = up(
        &[(
            "update",
            r#"{"state":{"desired":{"property":"G"}},"clientToken":"s1"}"#,
        )],
        LIGHT,
    );
    assert_eq!(r[0].0, "update/accepted", "{r:?}");
    let r = up(
        &[("update", r#"{"state":{"reported":{"mine":1}}}"#)],
        SWITCH,
    );
    assert_eq!(r[0].0, "update/accepted", "{r:?}");
    assert!(
        wait_until(PATIENCE, || cloud_state(LIGHT)
            == r#"{"desired":{"property":"G"}}"#),
        "{}",
        cloud_text()
    );

    // 2. The console sets desired in the cloud: the light gets the local delta, as if a local
    // client had written it, and nothing is echoed back up.
    let light = listen(&rig, &rig.light, "update/delta", 1);
    let sent_before = core_requests();
    std::fs::write(
        &console,
        format!("{LIGHT} {{\"desired\":{{\"property\":\"Y\"}}}}\n"),
    )
    .unwrap();
    let text = finish(light);
    assert!(text.contains(r#""state":{"property":"Y"}"#), "{text}");
    assert!(text.contains(r#""clientToken":"console-1""#), "{text}");
    let r = up(&[("get", r#"{"clientToken":"g"}"#)], LIGHT);
    assert!(r[0].1.contains(r#""desired":{"property":"Y"}"#), "{r:?}");
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(core_requests(), sent_before, "echo:\n{}", cloud_text());

    // 3. Outage: the core cannot reach the cloud. Locally the light reports twice and the
    // switch sets desired R; meanwhile the console sets desired G in the cloud, later.
    mosq.stop();
    assert!(wait_until(PATIENCE, || sync_field("link") == "\"down\""));
    let r = up(
        &[
            ("update", r#"{"state":{"reported":{"property":"Y"}}}"#),
            ("update", r#"{"state":{"reported":{"property":"Z"}}}"#),
            ("update", r#"{"state":{"desired":{"property":"R"}}}"#),
        ],
        LIGHT,
    );
    assert_eq!(r.len(), 3, "{r:?}");
    assert!(wait_until(PATIENCE, || sync_field("unsynced") == "1"));
    // Metadata timestamps are whole seconds: the console's write must be a later second.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let light = listen(&rig, &rig.light, "update/delta", 1);
    std::fs::write(
        &console,
        format!("{LIGHT} {{\"desired\":{{\"property\":\"Y\"}}}}\n{LIGHT} {{\"desired\":{{\"property\":\"G\"}}}}\n"),
    )
    .unwrap();
    assert!(wait_until(PATIENCE, || cloud_text().contains("console-2")));
    let before_reconnect = core_requests();
    mosq.restart();
    // Desired: the later write (the console's G) wins here too; reported: the core's Z wins
    // there. The offline reports are not replayed: one update carries the latest state.
    let text = finish(light);
    assert!(text.contains(r#""state":{"property":"G"}"#), "{text}");
    assert!(
        wait_until(PATIENCE, || cloud_state(LIGHT)
            == r#"{"desired":{"property":"G"},"reported":{"property":"Z"}}"#),
        "{}\n--- core ---\n{}",
        cloud_text(),
        log_text(&rig.root, &rig.daemon)
    );
    let r = up(&[("get", "")], LIGHT);
    assert!(
        r[0].1.contains(
            r#""state":{"desired":{"property":"G"},"reported":{"property":"Z"},"delta":{"property":"G"}}"#
        ),
        "{r:?}"
    );
    assert!(wait_until(PATIENCE, || sync_field("unsynced") == "0"));
    std::thread::sleep(std::time::Duration::from_secs(2));
    let log = cloud_text();
    assert_eq!(core_requests() - before_reconnect, 1, "{log}");
    assert!(
        !log.contains(r#""property":"Y"}},"clientToken":"sprig"#),
        "{log}"
    );
    assert!(!log.contains(SWITCH), "an unsynced shadow went up:\n{log}");
    drop(service);
}
