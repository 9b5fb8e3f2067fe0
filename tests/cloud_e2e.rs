//! The cloud link through the real daemon: a device (mosquitto_pub/sub over TLS to sprig) on one
//! side, a real mosquitto standing in for AWS IoT Core on the other, the group's subscriptions
//! in between (A → cloud on `up/#`, cloud → A on `down/#`), read back with `sprig status`.

mod cloud_peer;
mod common;

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use cloud_peer::{Dir, Mosquitto, Proc};
use common::*;

const ARN: &str = "arn:aws:iot:us-east-1:123456789012";

struct Rig {
    root: TestRoot,
    cloud: Dir,
    mosq: Mosquitto,
    group_ca: PathBuf,
    dev_cert: PathBuf,
    dev_key: PathBuf,
}

/// A root whose config.json points the cloud link at the test mosquitto (legacy cert paths:
/// root.ca.pem = the cloud CA, core.cert.pem / core.private.key = the core's identity), device
/// A, and the GGCloudSpooler settings `spooler_env`.
fn rig(label: &str, spooler_env: &str) -> Rig {
    let cloud = Dir::new(&format!("e2e-{label}"));
    cloud_peer::certs(&cloud.0);
    let mosq = Mosquitto::start(&cloud);
    let root = TestRoot::new(label);
    let certs = root.certs();
    // TestRoot made the group CA the local broker issues its server certificate from.
    let group_ca = certs.join("group-ca.pem");
    let s = |p: &PathBuf| p.to_str().unwrap().to_owned();
    let (dev_cert, dev_key, der) = (
        cloud.path("A.pem"),
        cloud.path("A.key"),
        cloud.path("A.der"),
    );
    openssl_self_signed(&dev_key, &dev_cert, "A", &[]);
    openssl(&[
        "x509",
        "-in",
        &s(&dev_cert),
        "-outform",
        "DER",
        "-out",
        &s(&der),
    ]);
    let id = String::from_utf8_lossy(&openssl(&["dgst", "-sha256", "-r", &s(&der)]).stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let a = format!("{ARN}:thing/A");
    root.write_group(&format!(
        r#"{{"DeviceDefinitionVersion":{{"Devices":[{{"Id":"A","ThingArn":"{a}","CertificateArn":"{ARN}:cert/{id}","SyncShadow":false}}]}},
"SubscriptionDefinitionVersion":{{"Subscriptions":[
  {{"Id":"up","Source":"{a}","Subject":"up/#","Target":"cloud"}},
  {{"Id":"down","Source":"cloud","Subject":"down/#","Target":"{a}"}}]}},
"FunctionDefinitionVersion":{{"Functions":[{{"FunctionArn":"arn:aws:lambda:::function:GGCloudSpooler:1",
  "FunctionConfiguration":{{"Environment":{{"Variables":{{{spooler_env}}}}},"Executable":"spooler","MemorySize":32768,"Pinned":true,"Timeout":3}},
  "Id":"spooler"}}]}}}}"#
    ));
    cloud_peer::use_cloud(&root, &cloud, mosq.port);
    Rig {
        root,
        cloud,
        mosq,
        group_ca,
        dev_cert,
        dev_key,
    }
}

fn status(rig: &Rig) -> String {
    let (st, out, _) = run_sprig(["status", "-r", rig.root.root().to_str().unwrap()]);
    if st.success() {
        out
    } else {
        String::new()
    }
}

/// The number after `key ` on the status line starting with `section:`.
fn stat(rig: &Rig, section: &str, key: &str) -> Option<u64> {
    let text = status(rig);
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{section}:")))?;
    let at = line.find(&format!(" {key} "))? + key.len() + 2;
    line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()
}

fn dev_args(rig: &Rig) -> Vec<String> {
    mosquitto_device_args(
        rig.root.mqtt_port,
        &rig.group_ca,
        &rig.dev_cert,
        &rig.dev_key,
        "A",
    )
}

/// Device A subscribed to sprig on `down/#` (`-d`: its output says when the SUBACK came);
/// stdout to `dev.out`, stderr to `dev.err` in the root's temp dir. Returns the process and a
/// reader of its stdout.
fn dev_sub(rig: &Rig) -> (Proc, impl Fn() -> String) {
    let dir = rig.root.dir.path();
    let out = dir.join("dev.out");
    let proc = Proc(
        Command::new("stdbuf")
            .args(["-oL", "mosquitto_sub"])
            .args(dev_args(rig))
            .args(["-d", "-v", "-t", "down/#"])
            .stdout(fs::File::create(&out).unwrap())
            .stderr(fs::File::create(dir.join("dev.err")).unwrap())
            .spawn()
            .unwrap(),
    );
    (proc, move || fs::read_to_string(&out).unwrap_or_default())
}

/// Device A publishes `lines` at QoS 1 (`mosquitto_pub -l`, one message per line).
fn device_publish(rig: &Rig, topic: &str, lines: &[String]) -> Output {
    let mut child = Command::new("mosquitto_pub")
        .args(dev_args(rig))
        .args(["-q", "1", "-t", topic, "-l"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for l in lines {
        writeln!(stdin, "{l}").unwrap();
    }
    drop(stdin);
    child.wait_with_output().unwrap()
}

fn numbered(n: std::ops::Range<usize>) -> Vec<String> {
    n.map(|i| i.to_string()).collect()
}

fn up_lines(rig: &Rig) -> Vec<String> {
    cloud_peer::dedup(&cloud_peer::lines(&rig.cloud, "sub.out"))
}

#[test]
fn device_to_cloud_and_cloud_to_device_through_the_daemon() {
    let rig = rig("e2e-both", r#""GG_CONFIG_STORAGE_TYPE":"Memory""#);
    let _sub = cloud_peer::cloud_sub(&rig.cloud, &rig.mosq, "up/#", "sub.out");
    let daemon = rig.root.start();
    assert!(
        wait_until(PATIENCE, || status(&rig).contains("state connected")),
        "{}\n{}",
        status(&rig),
        daemon.output()
    );
    assert!(wait_until(PATIENCE, || rig
        .mosq
        .log()
        .contains("Received SUBSCRIBE from sprig-test-core-c00")));

    // Device → cloud along A → cloud `up/#`, in order.
    let out = device_publish(&rig, "up/a", &numbered(0..50));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want: Vec<String> = (0..50).map(|i| format!("up/a {i}")).collect();
    assert!(
        wait_until(PATIENCE, || up_lines(&rig).len() >= 50),
        "{:?}\n{}",
        up_lines(&rig),
        status(&rig)
    );
    assert_eq!(up_lines(&rig), want);

    // Cloud → device along cloud → A `down/#`.
    let (_dev, dev_text) = dev_sub(&rig);
    assert!(wait_until(PATIENCE, || dev_text().contains("SUBACK")));
    cloud_peer::cloud_pub(&rig.cloud, &rig.mosq, "down/x", "from the cloud", "1");
    assert!(
        wait_until(PATIENCE, || dev_text().contains("down/x from the cloud")),
        "{}\n{}",
        dev_text(),
        status(&rig)
    );
    assert!(
        wait_until(PATIENCE, || stat(&rig, "cloud", "received") == Some(1)),
        "{}",
        status(&rig)
    );
    assert_eq!(stat(&rig, "cloud", "published"), Some(50));
    assert!(
        status(&rig).contains("spool: storage Memory"),
        "{}",
        status(&rig)
    );
    // The cloud link adds no thread: still one. (Under qemu-user, scripts/test-cross.sh sets
    // SPRIG_TEST_QEMU: the emulator runs threads of its own, so the count says nothing there.)
    if std::env::var_os("SPRIG_TEST_QEMU").is_none() {
        assert_eq!(
            proc_status_field(daemon.pid, "Threads").as_deref(),
            Some("1")
        );
    }
}

#[test]
fn kill_9_with_the_filesystem_spool_then_restart_delivers_what_was_spooled() {
    let rig = rig(
        "e2e-kill",
        r#""GG_CONFIG_STORAGE_TYPE":"FileSystem","GG_CONFIG_MAX_SIZE_BYTES":"2621440""#,
    );
    let mut mosq = rig.mosq;
    let _sub = cloud_peer::cloud_sub(&rig.cloud, &mosq, "up/#", "sub.out");
    mosq.stop(); // the cloud is down: everything the device sends is spooled
    let rig = Rig { mosq, ..rig };
    let mut daemon = rig.root.start();
    assert!(
        wait_until(PATIENCE, || stat(&rig, "spool", "messages") == Some(0)),
        "{}",
        daemon.output()
    );
    // The device keeps publishing (QoS 1) from a feeder thread while sprig is killed.
    let mut publisher = Command::new("mosquitto_pub")
        .args(dev_args(&rig))
        .args(["-q", "1", "-t", "up/k", "-l"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = publisher.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        // 20,000 small messages (~1.5 MB of spool budget: none is dropped for space), paced
        // so the burst is still going when the status file shows 2,000 spooled.
        for i in 0..20_000 {
            if writeln!(stdin, "{i}").is_err() {
                break;
            }
            if i % 20 == 0 {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
    });
    // Wait until the status file shows a good part of the burst spooled, then kill -9.
    let mut seen = 0;
    assert!(wait_until(PATIENCE, || {
        seen = stat(&rig, "spool", "messages").unwrap_or(0);
        seen >= 2000
    }));
    daemon.signal(9);
    assert!(daemon.wait_exit(PATIENCE).is_some());
    let _ = publisher.kill();
    let _ = publisher.wait();
    let _ = feeder.join();
    let segs = fs::read_dir(rig.root.write_dir().join("ggc/var/state/spool"))
        .unwrap()
        .count();
    assert!(segs > 1, "spool segments on disk");

    let mut mosq = rig.mosq;
    mosq.restart();
    let rig = Rig { mosq, ..rig };
    let daemon = rig.root.start();
    // Every message the status reported spooled arrives, in order, with no gaps.
    assert!(
        wait_until(PATIENCE, || up_lines(&rig).len() as u64 >= seen),
        "{} of {seen}\n{}\n{}",
        up_lines(&rig).len(),
        status(&rig),
        daemon.output()
    );
    assert!(
        wait_until(PATIENCE, || stat(&rig, "spool", "messages") == Some(0)),
        "{}",
        status(&rig)
    );
    let got = up_lines(&rig);
    let want: Vec<String> = (0..got.len()).map(|i| format!("up/k {i}")).collect();
    assert_eq!(got, want, "a gap-free prefix of the burst, in order");
    assert!(got.len() as u64 >= seen);
    assert!(got.len() < 20_000, "the kill came mid-burst");
    assert_eq!(stat(&rig, "spool", "dropped_full"), Some(0));
}

#[test]
fn spool_full_drops_oldest_counted_in_status_with_rss_bounded() {
    let rig = rig(
        "e2e-full",
        r#""GG_CONFIG_STORAGE_TYPE":"Memory","GG_CONFIG_MAX_SIZE_BYTES":"262144""#,
    );
    let mut mosq = rig.mosq;
    mosq.stop();
    let rig = Rig { mosq, ..rig };
    let daemon = rig.root.start();
    assert!(
        wait_until(PATIENCE, || stat(&rig, "spool", "messages") == Some(0)),
        "{}",
        daemon.output()
    );
    let rss = || {
        proc_status_field(daemon.pid, "VmRSS")
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap()
    };
    let before = rss();
    // 4 MiB of 1 KiB messages into a 256 KiB spool, in rounds so the work queue keeps up.
    let payload = "x".repeat(1024);
    for round in 0..8 {
        let lines: Vec<String> = (0..512).map(|i| format!("{round}-{i} {payload}")).collect();
        assert!(device_publish(&rig, "up/f", &lines).status.success());
    }
    assert!(
        wait_until(PATIENCE, || stat(&rig, "spool", "dropped_full")
            .unwrap_or(0)
            > 3000),
        "{}",
        status(&rig)
    );
    let bytes = stat(&rig, "spool", "bytes").unwrap();
    assert!(bytes <= 262_144, "{bytes}");
    let after = rss();
    eprintln!("spool full: RSS {before} kB before, {after} kB after 4 MiB into a 256 KiB spool");
    assert!(
        after < before + 4 * 1024,
        "RSS grew from {before} to {after} kB"
    );
}

#[test]
fn persistent_session_delivers_what_the_cloud_sent_while_sprig_was_down() {
    let rig = rig(
        "e2e-persist",
        r#""GG_CONFIG_SUBSCRIPTION_QUALITY":"AtLeastOncePersistent""#,
    );
    let mut daemon = rig.root.start();
    assert!(
        wait_until(PATIENCE, || rig
            .mosq
            .log()
            .contains("Received SUBSCRIBE from sprig-test-core-c00")),
        "{}",
        daemon.output()
    );
    assert!(
        rig.mosq.log().contains("sprig-test-core-c00 (p2, c0,"),
        "cleanSession=0"
    );
    daemon.signal(15);
    assert!(daemon.wait_exit(PATIENCE).is_some());
    // While sprig is down the cloud publishes at QoS 1; the broker keeps them for the session.
    for i in 0..3 {
        cloud_peer::cloud_pub(
            &rig.cloud,
            &rig.mosq,
            "down/p",
            &format!("while-down-{i}"),
            "1",
        );
    }
    // Hold the cloud back until device A is subscribed to sprig (local delivery is QoS 0).
    let mut mosq = rig.mosq;
    mosq.stop();
    let rig = Rig { mosq, ..rig };
    let daemon = rig.root.start();
    // Up (listening) before the device connects: mosquitto_sub does not retry a refusal.
    assert!(wait_until(PATIENCE, || stat(&rig, "spool", "messages").is_some()));
    let (_dev, dev_text) = dev_sub(&rig);
    assert!(
        wait_until(PATIENCE, || dev_text().contains("SUBACK")),
        "device: {} {}\ndaemon: {}",
        dev_text(),
        fs::read_to_string(rig.root.dir.path().join("dev.err")).unwrap_or_default(),
        daemon.output()
    );
    let mut mosq = rig.mosq;
    mosq.restart();
    let rig = Rig { mosq, ..rig };
    assert!(
        wait_until(PATIENCE, || dev_text().contains("down/p while-down-2")),
        "{}\n{}",
        dev_text(),
        status(&rig)
    );
    let text = dev_text();
    let got: Vec<&str> = text.lines().filter(|l| l.starts_with("down/p ")).collect();
    assert_eq!(
        got,
        [
            "down/p while-down-0",
            "down/p while-down-1",
            "down/p while-down-2"
        ]
    );
}

#[test]
fn wrong_cloud_ca_is_refused_logged_and_retried() {
    let rig = rig("e2e-wrongca", "");
    fs::copy(
        rig.cloud.path("otherca.pem"),
        rig.root.certs().join("root.ca.pem"),
    )
    .unwrap();
    let daemon = rig.root.start();
    let log = || {
        let mut s = daemon.output();
        s.push_str(
            &fs::read_to_string(rig.root.log_dir().join("system/runtime.log")).unwrap_or_default(),
        );
        s
    };
    assert!(
        wait_until(PATIENCE, || log().matches("UnknownIssuer").count() >= 2),
        "{}",
        log()
    );
    assert!(log().contains("retrying in"), "{}", log());
    assert!(
        wait_until(PATIENCE, || status(&rig).contains("UnknownIssuer")),
        "{}",
        status(&rig)
    );
    assert!(!status(&rig).contains("state connected"));
    assert!(
        !rig.mosq.log().contains("New client connected"),
        "no session was made"
    );
}
