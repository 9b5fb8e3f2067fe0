//! Hot deployments reach the shadow service and the discovery endpoint: the real binary,
//! `sprig deploy` / `sprig reset` on a running core, the stock AWSIoTPythonSDK client
//! (tests/py/shadow_device.py `raw`) for shadow requests and curl with the device certificates
//! for the Discovery API.
//!
//! Devices: K (in every group) and N (added by a deployment, then removed).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::*;

const KEEPER: &str = "Keeper";
const NEWCOMER: &str = "Newcomer";

struct Rig {
    root: TestRoot,
    _daemon: Daemon,
    port: u16,
    ca: PathBuf,
    k: Dev,
    n: Dev,
}

/// Every device in `devs` may send shadow requests for any thing and gets every reply.
fn group(devs: &[&Dev]) -> String {
    let subs = shadow_service_subs(devs);
    group_json_with(devs, &subs)
}

/// A core with discovery on a free port, serving the group of K alone.
fn rig(label: &str) -> Rig {
    let root = TestRoot::new(label);
    let port = free_port();
    let config = root.default_config().replacen(
        '{',
        &format!(r#"{{ "sprig": {{ "discoveryPort": {port} }},"#),
        1,
    );
    root.write_config(&config);
    let mut devs = root.make_devices(&[KEEPER, NEWCOMER]).into_iter();
    let (k, n) = (devs.next().unwrap(), devs.next().unwrap());
    root.write_group(&group(&[&k]));
    let daemon = root.start_ready();
    Rig {
        ca: root.certs().join("group-ca.pem"),
        root,
        _daemon: daemon,
        port,
        k,
        n,
    }
}

impl Rig {
    fn deploy(&self, devs: &[&Dev], name: &str) {
        let p = self.root.dir.path().join(name);
        std::fs::write(&p, group(devs)).unwrap();
        let (st, out, err) = self.root.sprig("deploy", &[p.to_str().unwrap()]);
        assert!(st.success(), "deploy {name}: {out}{err}");
    }

    /// The HTTP status of `dev`'s discovery request for its own thing name.
    fn discover(&self, dev: &Dev) -> String {
        let url = format!(
            "https://localhost:{}/greengrass/discover/thing/{}",
            self.port, dev.name
        );
        let out = Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "20",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .arg("--cacert")
            .arg(&self.ca)
            .arg("--cert")
            .arg(&dev.cert)
            .arg("--key")
            .arg(&dev.key)
            .arg(url)
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until `dev`'s discovery answers `code` (a running core applies a deployment
    /// within seconds of `sprig deploy` returning).
    fn discovery_becomes(&self, dev: &Dev, code: &str) -> bool {
        wait_until(PATIENCE, || self.discover(dev) == code)
    }

    /// `requests` ((op, body)) from `dev` to `thing`'s shadow, one reply awaited each; the
    /// `(suffix, body)` of every reply.
    fn shadow(&self, dev: &Dev, thing: &str, requests: &[(&str, &str)]) -> Vec<(String, String)> {
        let list: Vec<String> = requests
            .iter()
            .map(|(op, body)| format!("[\"{op}\",\"{}\"]", body.replace('"', "\\\"")))
            .collect();
        let file =
            self.root
                .dir
                .path()
                .join(format!("req-{}-{thing}-{}.json", dev.name, requests.len()));
        std::fs::write(&file, format!("[{}]", list.join(","))).unwrap();
        let mut c = py_script("shadow_device.py");
        c.arg("raw")
            .arg(self.root.mqtt_port.to_string())
            .arg(&self.ca)
            .arg(&dev.cert)
            .arg(&dev.key)
            .arg(&dev.name)
            .arg(thing)
            .arg(&file)
            .arg("-1");
        let text = run_client(c, self.root.dir.path(), &format!("shadow-{}", dev.name));
        shadow_replies(&text)
    }

    /// The `shadows` status section's `count` (shadows held in memory).
    fn shadows_in_memory(&self) -> u64 {
        let s = status_json(&self.root).expect("status");
        let sec = &s[s.find("\"shadows\":{").expect("shadows section")..];
        let at = sec.find("\"count\":").unwrap() + 8;
        sec[at..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect::<String>()
            .parse()
            .unwrap()
    }
}

fn codes(replies: &[(String, String)]) -> Vec<String> {
    replies
        .iter()
        .map(|(suffix, body)| match body.find("\"code\":") {
            Some(i) => format!("{suffix} {}", &body[i + 7..i + 10]),
            None => suffix.clone(),
        })
        .collect()
}

#[test]
fn a_device_added_then_removed_by_hot_deployments_gets_its_shadow_and_discovery_then_loses_both() {
    let rig = rig("hot-shadow-discovery");
    let (k, n) = (&rig.k, &rig.n);
    // Before: N is in no group.
    assert_eq!(rig.discover(n), "403");
    assert_eq!(rig.discover(k), "200");
    let before = rig.shadow(k, NEWCOMER, &[("get", "")]);
    assert_eq!(codes(&before), ["get/rejected 404"], "{before:?}");
    assert!(before[0].1.contains("Thing not found"), "{before:?}");

    // A deployment adds N: it discovers, and its shadow update is accepted.
    rig.deploy(&[k, n], "with-n.json");
    assert!(
        rig.discovery_becomes(n, "200"),
        "N still refused after the deployment"
    );
    let r = rig.shadow(
        n,
        NEWCOMER,
        &[
            ("update", r#"{"state":{"reported":{"on":true}}}"#),
            ("get", ""),
        ],
    );
    assert_eq!(codes(&r), ["update/accepted", "get/accepted"], "{r:?}");
    assert!(r[1].1.contains(r#""reported":{"on":true}"#), "{r:?}");
    assert_eq!(rig.discover(k), "200", "K kept");

    // A deployment removes N: discovery refuses it and its shadow is no longer served.
    rig.deploy(&[k], "without-n.json");
    assert!(
        rig.discovery_becomes(n, "403"),
        "N still served after removal"
    );
    let r = rig.shadow(k, NEWCOMER, &[("get", "")]);
    assert_eq!(codes(&r), ["get/rejected 404"], "{r:?}");
    assert!(r[0].1.contains("Thing not found"), "{r:?}");
    assert_eq!(rig.discover(k), "200");
}

#[test]
fn reset_on_a_running_core_empties_the_shadow_service() {
    let rig = rig("hot-reset");
    let k = &rig.k;
    let r = rig.shadow(
        k,
        KEEPER,
        &[("update", r#"{"state":{"desired":{"color":"green"}}}"#)],
    );
    assert_eq!(codes(&r), ["update/accepted"], "{r:?}");
    // status.json is rewritten when something changed, not at once.
    assert!(
        wait_until(Duration::from_secs(10), || rig.shadows_in_memory() == 1),
        "{}",
        status_json(&rig.root).unwrap_or_default()
    );

    let (st, out, err) = rig.root.sprig("reset", &[]);
    assert!(st.success(), "reset: {out}{err}");
    // The running core applies the empty group; the shadows it held are gone from memory.
    assert!(rig.discovery_becomes(k, "403"), "the reset was not applied");
    assert!(
        wait_until(Duration::from_secs(10), || rig.shadows_in_memory() == 0),
        "shadows still held after reset: {}",
        status_json(&rig.root).unwrap_or_default()
    );
    // K deployed again: its old shadow does not come back.
    rig.deploy(&[k], "again.json");
    assert!(rig.discovery_becomes(k, "200"));
    let r = rig.shadow(k, KEEPER, &[("get", "")]);
    assert_eq!(codes(&r), ["get/rejected 404"], "{r:?}");
    assert!(r[0].1.contains("No shadow exists"), "{r:?}");
}
