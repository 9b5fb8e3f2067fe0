//! Fleet deployments over AWS IoT Jobs with the real daemon: mosquitto stands in for AWS IoT
//! Core, tests/py/jobs_service.py (paho-mqtt) plays the Jobs service and records every update.

mod cloud_peer;
mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use cloud_peer::{Dir, Mosquitto};
use common::*;

const THING: &str = "sprig-test-core";

struct Rig {
    root: TestRoot,
    cloud: Dir,
    mosq: Mosquitto,
    a: Dev,
}

fn rig(label: &str) -> Rig {
    let cloud = Dir::new(&format!("jobs-{label}"));
    cloud_peer::certs(&cloud.0);
    let mosq = Mosquitto::start(&cloud);
    let root = TestRoot::new(label);
    cloud_peer::use_cloud(&root, &cloud, mosq.port);
    let a = make_device(root.dir.path(), "A");
    Rig {
        root,
        cloud,
        mosq,
        a,
    }
}

impl Rig {
    /// Starts the Jobs service with these `(jobId, document)` jobs queued.
    fn service(&self, jobs: &[(&str, String)]) -> Bg {
        let list: Vec<String> = jobs
            .iter()
            .map(|(id, doc)| format!(r#"{{"jobId":"{id}","document":{doc}}}"#))
            .collect();
        let file = self.cloud.path("jobs.json");
        fs::write(&file, format!("[{}]", list.join(","))).unwrap();
        let mut cmd = Command::new(python());
        cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/jobs_service.py"))
            .arg(self.mosq.port.to_string())
            .arg(self.cloud.path("ca.pem"))
            .arg(self.cloud.path("cloudclient.pem"))
            .arg(self.cloud.path("cloudclient.key"))
            .arg(THING)
            .arg(&file);
        let bg = Bg::spawn(cmd, self.cloud.path("service.out"));
        assert!(bg.wait_for("ready"), "{}{}", bg.text(), bg.errors());
        bg
    }

    fn start(&self, env: &[(&str, &str)]) -> Daemon {
        let d = Daemon::spawn(&self.root, &["--foreground", "-i"], env);
        assert!(
            wait_until(PATIENCE, || status_json(&self.root).is_some()),
            "daemon did not come up:\n{}",
            d.output()
        );
        d
    }

    /// A job document deploying a group with device A and one route A → cloud.
    fn good_doc(&self, subject: &str) -> String {
        let a = self.a.thing_arn();
        let group = group_json_with(&[&self.a], &[(a.as_str(), subject, "cloud")]);
        format!(r#"{{"operation":"sprig.deploy","group":{group}}}"#)
    }
}

/// The service's `UPDATE <job> ...` lines for one job.
fn updates(service: &Bg, job: &str) -> Vec<String> {
    service
        .text()
        .lines()
        .filter(|l| l.starts_with(&format!("UPDATE {job} ")))
        .map(str::to_string)
        .collect()
}

/// Waits until the service recorded a final status for `job`.
fn wait_final(rig: &Rig, service: &Bg, daemon: &Daemon, job: &str, patience: std::time::Duration) {
    assert!(
        wait_until(patience, || updates(service, job)
            .iter()
            .any(|l| terminal(l))),
        "{job}: service:\n{}\ncore:\n{}",
        service.text(),
        log_text(&rig.root, daemon)
    );
}

fn terminal(line: &str) -> bool {
    [" SUCCEEDED ", " FAILED ", " REJECTED "]
        .iter()
        .any(|s| line.contains(s))
}

#[test]
fn jobs_succeed_fail_and_reject_one_at_a_time() {
    let rig = rig("jobs-seq");
    let bad_group = r#"{"operation":"sprig.deploy","group":{"SubscriptionDefinitionVersion":{"Subscriptions":[{"Id":"x","Source":"nowhere","Subject":"t","Target":"cloud"}]}}}"#;
    let service = rig.service(&[
        ("j-ok", rig.good_doc("up/ok")),
        ("j-bad", bad_group.to_string()),
        ("j-op", r#"{"operation":"reboot"}"#.to_string()),
    ]);
    let daemon = rig.start(&[]);
    wait_final(&rig, &service, &daemon, "j-op", PATIENCE * 2);
    let (ok, bad, op) = (
        updates(&service, "j-ok"),
        updates(&service, "j-bad"),
        updates(&service, "j-op"),
    );
    // An explicit IN_PROGRESS first, then exactly one final status each.
    for (u, last) in [
        (&ok, " SUCCEEDED "),
        (&bad, " FAILED "),
        (&op, " REJECTED "),
    ] {
        assert_eq!(u.len(), 2, "{u:?}");
        assert!(u[0].contains(" IN_PROGRESS "), "{u:?}");
        assert!(u[1].contains(last), "{u:?}");
    }
    assert!(bad[1].contains("\"reason\": \""), "{bad:?}");
    assert!(
        bad[1].contains("Source"),
        "the reason names the problem: {bad:?}"
    );
    assert!(op[1].contains("unknown operation"), "{op:?}");
    // One at a time: each job started only after the previous one ended.
    let text = service.text();
    let pos = |s: &str| text.find(s).unwrap_or_else(|| panic!("{s} in {text}"));
    assert!(pos("UPDATE j-ok SUCCEEDED") < pos("START j-bad"));
    assert!(pos("UPDATE j-bad FAILED") < pos("START j-op"));
    // j-ok's group is in force; j-bad changed nothing.
    let group = fs::read_to_string(rig.root.group_file()).unwrap();
    assert!(
        group.contains("up/ok") && group.contains(&rig.a.thing_arn()),
        "{group}"
    );
    let (_, hist, _) = rig.root.sprig("deploy", &["--status"]);
    let lines: Vec<&str> = hist.lines().collect();
    assert_eq!(lines.len(), 2, "{hist}");
    assert!(
        lines[0].contains(" Failure ") && lines[1].contains(" Success "),
        "{hist}"
    );
    // The daemon applied j-ok in place (the status file lags up to a second).
    let status = || rig.root.sprig("status", &[]).1;
    assert!(
        wait_until(PATIENCE, || {
            let s = status();
            s.contains("jobs: control sprig-test-core connected")
                && s.contains("succeeded 1, failed 1, rejected 1")
                && s.contains("deployment: applied_since_start 1")
        }),
        "{}",
        status()
    );
}

#[test]
fn a_job_interrupted_by_kill_9_still_ends_with_a_status() {
    let rig = rig("jobs-kill");
    let service = rig.service(&[("j1", rig.good_doc("up/one"))]);
    // The deployment pauses between its steps: the core dies while it runs.
    let mut daemon = rig.start(&[("SPRIG_TEST_DEPLOY_PAUSE_MS", "1500")]);
    assert!(
        wait_until(PATIENCE, || !updates(&service, "j1").is_empty()),
        "{}\n{}",
        service.text(),
        log_text(&rig.root, &daemon)
    );
    daemon.signal(9);
    daemon.wait_exit(PATIENCE);
    assert!(
        updates(&service, "j1").iter().all(|l| !terminal(l)),
        "the job ended before the kill: {}",
        service.text()
    );
    let daemon = rig.start(&[]);
    wait_final(&rig, &service, &daemon, "j1", PATIENCE * 2);
    let u = updates(&service, "j1");
    assert_eq!(u.iter().filter(|l| terminal(l)).count(), 1, "{u:?}");
    assert!(u.last().unwrap().contains(" SUCCEEDED "), "{u:?}");
    let group = fs::read_to_string(rig.root.group_file()).unwrap();
    assert!(group.contains("up/one"), "{group}");
    assert!(
        !rig.root
            .write_dir()
            .join("ggc/var/state/deployments/job.json")
            .exists(),
        "the job file is removed once reported"
    );
}

/// SHA-256 (hex) of a file, by the openssl CLI.
fn sha256_of(path: &Path) -> String {
    let out = openssl(&["dgst", "-sha256", "-r", path.to_str().unwrap()]);
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn downloads_are_verified_before_staging_and_retried_then_failed() {
    let rig = rig("jobs-dl");
    // The file server: HTTPS with a certificate from the test CA (the core trusts it through
    // crypto.caPath = root.ca.pem); the files live in `files/`.
    let files = rig.cloud.path("files");
    fs::create_dir_all(&files).unwrap();
    let a = rig.a.thing_arn();
    let group = group_with_function(
        &group_json_with(&[&rig.a], &[(a.as_str(), "up/dl", "cloud")]),
        "f1",
    );
    fs::write(files.join("group.json"), &group).unwrap();
    let zip = files.join("f1.zip");
    make_zip(&zip, &[("main.py", "print(1)"), ("lib/util.py", "x = 1")]);
    let port = free_port();
    let mut cmd = Command::new(python());
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/https_files.py"))
        .arg(port.to_string())
        .arg(rig.cloud.path("server.pem"))
        .arg(rig.cloud.path("server.key"))
        .arg(&files);
    let server = Bg::spawn(cmd, rig.cloud.path("files.out"));
    assert!(
        server.wait_for("ready"),
        "{}{}",
        server.text(),
        server.errors()
    );
    let url = |f: &str| format!("https://localhost:{port}/{f}?X-Amz-Signature=abc");
    let (gsha, zsha) = (sha256_of(&files.join("group.json")), sha256_of(&zip));
    let doc = |gsha: &str, zurl: &str| {
        format!(
            r#"{{"operation":"sprig.deploy","groupUrl":"{}","groupSha256":"{gsha}","lambdas":[{{"id":"f1","url":"{zurl}","sha256":"{zsha}"}}]}}"#,
            url("group.json")
        )
    };
    let dead = format!("https://127.0.0.1:{}/f1.zip", free_port());
    let service = rig.service(&[
        ("j-dl", doc(&gsha, &url("f1.zip"))),
        ("j-hash", doc(&"0".repeat(64), &url("f1.zip"))),
        ("j-dead", doc(&gsha, &dead)),
    ]);
    let daemon = rig.start(&[]);
    wait_final(&rig, &service, &daemon, "j-dead", PATIENCE * 3);
    let ok = updates(&service, "j-dl");
    assert!(ok.last().unwrap().contains(" SUCCEEDED "), "{ok:?}");
    let lambda = rig.root.write_dir().join("ggc/deployment/lambda/f1");
    assert_eq!(
        fs::read_to_string(lambda.join("main.py")).unwrap(),
        "print(1)"
    );
    assert!(lambda.join("lib/util.py").exists());
    assert_eq!(fs::read_to_string(rig.root.group_file()).unwrap(), group);
    let hash = updates(&service, "j-hash");
    assert!(
        hash.last().unwrap().contains(" FAILED ")
            && hash.last().unwrap().contains("SHA-256 mismatch"),
        "{hash:?}"
    );
    let dead_u = updates(&service, "j-dead");
    assert!(
        dead_u.last().unwrap().contains(" FAILED ")
            && dead_u.last().unwrap().contains("failed 5 times"),
        "{dead_u:?}"
    );
    // Neither failure changed the deployed group or code; the group was fetched with the
    // presigned query string.
    assert_eq!(fs::read_to_string(rig.root.group_file()).unwrap(), group);
    assert!(lambda.join("main.py").exists());
    assert!(
        server
            .text()
            .contains("GET /group.json?X-Amz-Signature=abc"),
        "{}",
        server.text()
    );
    let (_, hist, _) = rig.root.sprig("deploy", &["--status"]);
    assert_eq!(
        hist.lines().count(),
        1,
        "failed downloads never start a deployment: {hist}"
    );
}
