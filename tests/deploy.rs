//! `sprig deploy`, hot apply and `sprig reset` with the real binary, mosquitto clients over
//! TLS as devices, zips made by Python's zipfile.
//!
//! Devices A, B, C. Group "one": A→B and A→C on `old/t`. Group "two": A→B on `new/t`, C removed.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;

struct Rig {
    root: TestRoot,
    ca: PathBuf,
    a: Dev,
    b: Dev,
    c: Dev,
}

impl Rig {
    /// A root with group "one" written as the deployed group (no daemon yet).
    fn new(label: &str) -> Rig {
        let root = TestRoot::new(label);
        let ca = root.certs().join("group-ca.pem");
        let [a, b, c] = ["A", "B", "C"].map(|n| make_device(root.dir.path(), n));
        let rig = Rig { root, ca, a, b, c };
        rig.root.write_group(&rig.group_one());
        rig
    }

    fn group_one(&self) -> String {
        let (a, b, c) = (self.a.thing_arn(), self.b.thing_arn(), self.c.thing_arn());
        group_json_with(
            &[&self.a, &self.b, &self.c],
            &[(&a, "old/t", &b), (&a, "old/t", &c)].map(|(s, t, d)| (s.as_str(), t, d.as_str())),
        )
    }

    fn group_two(&self) -> String {
        let (a, b) = (self.a.thing_arn(), self.b.thing_arn());
        group_json_with(&[&self.a, &self.b], &[(a.as_str(), "new/t", b.as_str())])
    }

    fn start(&self) -> Daemon {
        let d = self.root.start();
        assert!(
            wait_until(PATIENCE, || status_json(&self.root).is_some()),
            "daemon did not come up:\n{}",
            d.output()
        );
        d
    }

    /// Writes `text` beside the root and returns its path.
    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.root.dir.path().join(name);
        fs::write(&p, text).unwrap();
        p
    }

    fn deploy(&self, group: &Path, extra: &[&str]) -> (i32, String, String) {
        let mut args = vec![group.to_str().unwrap()];
        args.extend_from_slice(extra);
        let (st, out, err) = self.root.sprig("deploy", &args);
        (st.code().unwrap_or(-1), out, err)
    }

    fn mosq(&self, dev: &Dev) -> Vec<String> {
        mosquitto_device_args(
            self.root.mqtt_port,
            &self.ca,
            &dev.cert,
            &dev.key,
            &dev.name,
        )
    }

    fn publish(&self, dev: &Dev, topic: &str, msg: &str) -> Output {
        Command::new("mosquitto_pub")
            .args(self.mosq(dev))
            .args(["-t", topic, "-m", msg, "-q", "1"])
            .stdin(Stdio::null())
            .output()
            .expect("run mosquitto_pub")
    }

    /// mosquitto_sub on `#` in the background (`-d`: its stdout shows every CONNACK).
    fn subscribe(&self, dev: &Dev, label: &str) -> Bg {
        let out = self.root.dir.path().join(format!("{label}.out"));
        let mut cmd = Command::new("stdbuf");
        cmd.args(["-oL", "mosquitto_sub"])
            .args(self.mosq(dev))
            .args(["-d", "-v", "-t", "#", "-W", "120"]);
        let b = Bg::spawn(cmd, out);
        assert!(b.wait_for("Subscribed"), "{}", b.text());
        b
    }

    /// A publishes on `topic` until `sub` shows it (the first may race a fresh subscription).
    fn exchange(&self, sub: &Bg, topic: &str, tag: &str) -> bool {
        for i in 0..20 {
            let msg = format!("{tag}-{i}");
            let out = self.publish(&self.a, topic, &msg);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            if wait_until(Duration::from_secs(2), || sub.text().contains(&msg)) {
                return true;
            }
        }
        false
    }

    fn connected(&self) -> String {
        status_json(&self.root)
            .and_then(|s| {
                let i = s.find("\"devices\":[")?;
                Some(s[i..].split(']').next()?.to_string())
            })
            .unwrap_or_default()
    }

    fn history(&self) -> String {
        let (st, out, _) = self.root.sprig("deploy", &["--status"]);
        assert!(st.success());
        out
    }

    /// Staging, journal or trash left in ggc/deployment.
    fn leftovers(&self) -> Vec<String> {
        fs::read_dir(self.root.write_dir().join("ggc/deployment"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.') && n != ".lock")
            .collect()
    }

    fn lambda_dir(&self, id: &str) -> PathBuf {
        self.root.write_dir().join("ggc/deployment/lambda").join(id)
    }
}

fn connacks(sub: &Bg) -> usize {
    sub.text().matches("received CONNACK").count()
}

/// Files under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut v = Vec::new();
    walk(dir, dir, &mut v);
    v.sort();
    v
}

#[test]
fn a_deployment_while_devices_are_connected_swaps_routes_keeps_b_and_drops_c() {
    let rig = Rig::new("deploy-hot");
    let daemon = rig.start();
    let sb = rig.subscribe(&rig.b, "sub-b");
    let sc = rig.subscribe(&rig.c, "sub-c");
    assert!(rig.exchange(&sb, "old/t", "before"), "{}", sb.text());
    let two = rig.file("two.json", &rig.group_two());
    let (code, out, err) = rig.deploy(&two, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("applies it now"), "{out}");
    // C is no longer in the group: the daemon drops it (and refuses its reconnects).
    assert!(
        wait_until(PATIENCE, || {
            let c = rig.connected();
            c.contains("\"B\"") && !c.contains("\"C\"")
        }),
        "{}\n{}",
        rig.connected(),
        log_text(&rig.root, &daemon)
    );
    // New route in force, old one gone: `old/t` is published first and never arrives.
    let out = rig.publish(&rig.a, "old/t", "after-old");
    assert!(out.status.success());
    assert!(rig.exchange(&sb, "new/t", "after-new"), "{}", sb.text());
    assert!(!sb.text().contains("after-old"), "{}", sb.text());
    // B stayed connected throughout: one CONNACK only.
    assert_eq!(connacks(&sb), 1, "{}", sb.text());
    let log = log_text(&rig.root, &daemon);
    assert!(log.contains("deployment applied"), "{log}");
    assert!(log.contains("device C is no longer in the group"), "{log}");
    // The status names the deployment, in the same words as `sprig deploy --status`.
    let id = out_id(&rig.history());
    let (_, status, _) = rig.root.sprig("status", &[]);
    assert!(
        status.contains(&format!("last deployment: {id} Success")),
        "{status}"
    );
    drop(sc);
}

/// The id of the newest line of `sprig deploy --status`.
fn out_id(history: &str) -> String {
    history.split_whitespace().next().unwrap_or("").to_string()
}

#[test]
fn every_refused_deployment_keeps_the_old_group_serving() {
    let rig = Rig::new("deploy-refused");
    let _daemon = rig.start();
    let sb = rig.subscribe(&rig.b, "sub-b");
    let before = fs::read(rig.root.group_file()).unwrap();
    let dir = rig.root.dir.path();
    let two_f = group_with_function(&rig.group_two(), "f1");
    let (escape, link, ok_zip) = (
        dir.join("escape.zip"),
        dir.join("link.zip"),
        dir.join("ok.zip"),
    );
    make_zip(&escape, &[("main.py", "x"), ("../../evil.py", "pwned")]);
    make_zip(&link, &[("main.py", "x"), ("passwd", "->/etc/passwd")]);
    make_zip(&ok_zip, &[("main.py", "x")]);
    let bomb = dir.join("bomb.zip");
    let out = Command::new("python3")
        .args(["-c", "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED)\nz.writestr('big.bin', b'\\0' * (65 * 1024 * 1024))\nz.close()"])
        .arg(&bomb)
        .output()
        .unwrap();
    assert!(out.status.success());
    let cases: Vec<(&str, PathBuf, Vec<String>, &str)> = vec![
        (
            "syntax",
            rig.file("bad1.json", "{\"DeviceDefinitionVersion\": "),
            vec![],
            "bad1.json",
        ),
        (
            "two cores",
            rig.file("bad2.json", r#"{"CoreDefinitionVersion":{"Cores":[]}}"#),
            vec![],
            "a group has exactly one core",
        ),
        (
            "no code",
            rig.file("bad3.json", &two_f),
            vec![],
            "function f1",
        ),
        (
            "zip with ../",
            rig.file("bad4.json", &two_f),
            vec![format!("f1={}", escape.display())],
            "\"../../evil.py\"",
        ),
        (
            "zip with a link",
            rig.file("bad5.json", &two_f),
            vec![format!("f1={}", link.display())],
            "symbolic link",
        ),
        (
            "zip bomb",
            rig.file("bad6.json", &two_f),
            vec![format!("f1={}", bomb.display())],
            "at most 67108864",
        ),
        (
            "unknown function",
            rig.file("bad7.json", &rig.group_two()),
            vec![format!("nosuch={}", ok_zip.display())],
            "no function with Id \"nosuch\"",
        ),
    ];
    for (what, group, lambdas, needle) in cases {
        let mut extra: Vec<&str> = Vec::new();
        for l in &lambdas {
            extra.push("--lambda");
            extra.push(l);
        }
        let (code, out, err) = rig.deploy(&group, &extra);
        assert_eq!(code, 2, "{what}: {out}{err}");
        assert!(err.contains(needle), "{what}: {err}");
        assert_eq!(fs::read(rig.root.group_file()).unwrap(), before, "{what}");
        assert!(!rig.lambda_dir("f1").exists(), "{what}");
        assert!(
            !dir.join("evil.py").exists() && !rig.root.write_dir().join("ggc/evil.py").exists()
        );
        let h = rig.history();
        assert!(
            h.lines().next().unwrap().contains(" Failure ")
                && h.contains("previous group stays in force"),
            "{what}: {h}"
        );
        assert!(rig.exchange(&sb, "old/t", what), "{what}: {}", sb.text());
    }
    assert_eq!(connacks(&sb), 1, "{}", sb.text());
    let left = rig.leftovers();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn code_is_installed_exactly_kept_without_lambda_and_removed_with_its_function() {
    let rig = Rig::new("deploy-code");
    let dir = rig.root.dir.path();
    let (zip1, dir2) = (dir.join("v1.zip"), dir.join("v2"));
    make_zip(
        &zip1,
        &[("main.py", "v1"), ("lib/util.py", "u"), ("lib/", "")],
    );
    fs::create_dir_all(dir2.join("pkg")).unwrap();
    fs::write(dir2.join("main.py"), "v2").unwrap();
    fs::write(dir2.join("pkg/x.py"), "x").unwrap();
    let g = rig.file("f.json", &group_with_function(&rig.group_two(), "f1"));
    // The daemon is stopped: installed now, applied at the next start.
    let (code, out, err) = rig.deploy(&g, &["--lambda", &format!("f1={}", zip1.display())]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("when it starts"), "{out}");
    assert_eq!(tree(&rig.lambda_dir("f1")), ["lib/util.py", "main.py"]);
    let (code, out, err) = rig.deploy(&g, &["--lambda", &format!("f1={}", dir2.display())]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        tree(&rig.lambda_dir("f1")),
        ["main.py", "pkg/x.py"],
        "nothing left from v1"
    );
    assert_eq!(
        fs::read_to_string(rig.lambda_dir("f1").join("main.py")).unwrap(),
        "v2"
    );
    // Without --lambda the installed code is kept.
    let (code, out, err) = rig.deploy(&g, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(tree(&rig.lambda_dir("f1")), ["main.py", "pkg/x.py"]);
    // The daemon starts with the deployed group (two: C is refused, B routes on new/t).
    let daemon = rig.start();
    let sb = rig.subscribe(&rig.b, "sub-b");
    assert!(rig.exchange(&sb, "new/t", "started"), "{}", sb.text());
    // A group without the function removes its code.
    let none = rig.file("none.json", &rig.group_two());
    let (code, out, err) = rig.deploy(&none, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!rig.lambda_dir("f1").exists());
    let h = rig.history();
    assert_eq!(h.lines().count(), 4, "{h}");
    assert!(h.lines().all(|l| l.contains(" Success ")), "{h}");
    let (_, json, _) = rig.root.sprig("deploy", &["--status", "--json"]);
    assert!(json.starts_with("{\"deployments\":[{\"id\":"), "{json}");
    drop(daemon);
}

#[test]
fn kill_9_at_random_points_leaves_exactly_the_old_or_the_new_deployment() {
    let rig = Rig::new("deploy-kill");
    let dir = rig.root.dir.path().to_path_buf();
    // Two versions, each with its own group and its own code: version N's group routes N + 1
    // subscriptions and its code holds only vN-* files.
    let mut versions = Vec::new();
    for v in 0..2 {
        let code = dir.join(format!("code{v}"));
        fs::create_dir_all(&code).unwrap();
        for i in 0..40 {
            fs::write(code.join(format!("v{v}-{i}.py")), format!("{v}")).unwrap();
        }
        let (a, b) = (rig.a.thing_arn(), rig.b.thing_arn());
        let subs: Vec<(String, String, String)> = (0..=v)
            .map(|i| (a.clone(), format!("v{v}/{i}"), b.clone()))
            .collect();
        let g = group_with_function(&group_json_with(&[&rig.a, &rig.b], &subs), "f1");
        versions.push((rig.file(&format!("v{v}.json"), &g), code, g));
    }
    let (code, out, err) = rig.deploy(
        &versions[0].0,
        &["--lambda", &format!("f1={}", versions[0].1.display())],
    );
    assert_eq!(code, 0, "{out}{err}");
    let mut daemon = rig.start();
    let mut seed = std::process::id() as u64;
    let (mut outcomes, mut recovered) = ([0usize; 2], 0);
    for round in 0..6 {
        let v = (round + 1) % 2;
        let mut deploy = sprig_bin();
        deploy
            .args(["deploy", versions[v].0.to_str().unwrap(), "-r"])
            .arg(rig.root.root())
            .args(["--lambda", &format!("f1={}", versions[v].1.display())])
            .env("SPRIG_TEST_DEPLOY_PAUSE_MS", "40")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = deploy.spawn().unwrap();
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis(seed >> 33 & 0x1ff));
        // The deploying process and the daemon both die at this point.
        let _ = child.kill();
        let _ = child.wait();
        daemon.signal(9);
        daemon.wait_exit(PATIENCE);
        daemon = rig.start();
        let group = fs::read_to_string(rig.root.group_file()).unwrap();
        let n = versions
            .iter()
            .position(|x| x.2 == group)
            .expect("group.json is one version");
        outcomes[usize::from(n == v)] += 1;
        let said = daemon.output();
        if said.contains("completed it") {
            recovered += 1;
        }
        let files = tree(&rig.lambda_dir("f1"));
        assert_eq!(files.len(), 40, "round {round}: {files:?}");
        assert!(
            files.iter().all(|f| f.starts_with(&format!("v{n}-"))),
            "round {round}: group v{n} with code {files:?}"
        );
        let left = rig.leftovers();
        assert!(left.is_empty(), "round {round}: {left:?}");
        let h = rig.history();
        assert!(
            !h.contains(" Building ") && !h.contains(" InProgress "),
            "round {round}: {h}"
        );
        // The daemon routes by that version: subscription count in its status.
        assert!(
            wait_until(PATIENCE, || status_json(&rig.root).is_some_and(
                |s| s.contains(&format!("\"subscriptions\":{}", n + 1))
            )),
            "round {round}: {:?}",
            status_json(&rig.root)
        );
    }
    eprintln!("kill -9 outcomes: [old, new] {outcomes:?}, {recovered} completed at start");
}

#[test]
fn reset_removes_what_the_guide_says_and_keeps_config_and_certs() {
    let rig = Rig::new("deploy-reset");
    let dir = rig.root.dir.path();
    let zip = dir.join("f.zip");
    make_zip(&zip, &[("main.py", "x")]);
    let g = rig.file("f.json", &group_with_function(&rig.group_one(), "f1"));
    let (code, out, err) = rig.deploy(&g, &["--lambda", &format!("f1={}", zip.display())]);
    assert_eq!(code, 0, "{out}{err}");
    let w = rig.root.write_dir();
    let user_log = w.join("ggc/var/log/user/us-east-1/123456789012/f1.log");
    fs::create_dir_all(user_log.parent().unwrap()).unwrap();
    fs::write(&user_log, "log").unwrap();
    fs::create_dir_all(w.join("ggc/var/state/shadows")).unwrap();
    fs::create_dir_all(w.join("ggc/var/state/spool")).unwrap();
    fs::write(w.join("ggc/var/state/spool/head"), "0").unwrap();
    let daemon = rig.start();
    let sb = rig.subscribe(&rig.b, "sub-b");
    assert!(rig.exchange(&sb, "old/t", "before"));
    assert!(
        w.join("ggc/var/state/server").exists(),
        "the daemon issued its server certificate"
    );
    let config_before = fs::read(rig.root.config_file()).unwrap();
    let certs_before = tree(&rig.root.certs());
    let (st, _, err) = rig.root.sprig("reset", &["--force"]);
    assert_eq!(
        st.code(),
        Some(1),
        "--force is refused while the core runs: {err}"
    );
    let (st, out, err) = rig.root.sprig("reset", &[]);
    assert!(st.success(), "{out}{err}");
    for gone in [
        rig.root.group_file(),
        w.join("ggc/var/state/group.last-good.json"),
        rig.lambda_dir("f1"),
        w.join("ggc/var/log/user"),
        w.join("ggc/var/state/shadows"),
        w.join("ggc/var/state/server"),
    ] {
        assert!(!gone.exists(), "{} still exists", gone.display());
    }
    assert!(
        w.join("ggc/var/state/spool/head").exists(),
        "the spool is kept"
    );
    assert_eq!(fs::read(rig.root.config_file()).unwrap(), config_before);
    assert_eq!(tree(&rig.root.certs()), certs_before);
    // The running core goes on with the empty group: B is not in it any more.
    assert!(
        wait_until(PATIENCE, || !rig.connected().contains("\"B\"")),
        "{}",
        log_text(&rig.root, &daemon)
    );
    assert!(rig.history().lines().next().unwrap().contains(" Success "));
    drop(daemon);
    // After a restart the group is still empty (no last-good copy brings it back).
    let _daemon = rig.start();
    let (_, status, _) = rig.root.sprig("status", &["--json"]);
    assert!(status.contains("\"devices\":0"), "{status}");
    drop(_daemon);
    // Stopped: --force removes the spool too.
    let (st, out, err) = rig.root.sprig("reset", &["--force"]);
    assert!(st.success(), "{out}{err}");
    assert!(!w.join("ggc/var/state/spool").exists());
    assert!(rig.root.config_file().exists() && rig.root.certs().join("group-ca.pem").exists());
}

#[test]
fn check_on_an_adopted_root_says_what_will_run_and_what_will_not() {
    let rig = Rig::new("deploy-adopt");
    // A root as GGC v1 left it: a group with the cloud spooler, a function with its code
    // directory and one without, a connector and a resource.
    let base = group_json_with(&[&rig.a], &[] as &[(&str, &str, &str)]);
    let mut g = group_with_function(&base, "withcode");
    g = g.replacen(
        r#""Functions":["#,
        r#""Functions":[{"Id":"spool","FunctionArn":"arn:aws:lambda:::function:GGCloudSpooler:1","FunctionConfiguration":{"Environment":{"Variables":{"GG_CONFIG_STORAGE_TYPE":"Memory"}}}},{"Id":"nocode","FunctionArn":"arn:aws:lambda:us-east-1:123456789012:function:nocode:1","FunctionConfiguration":{"Executable":"main.py","Environment":{"Execution":{"IsolationMode":"NoContainer"}}}},"#,
        1,
    );
    let extra = r#","ConnectorDefinitionVersion":{"Connectors":[{"Id":"c1","ConnectorArn":"arn:aws:greengrass:us-east-1::/connectors/SNS/versions/1","Parameters":{"DefaultSNSArn":"arn:aws:sns:us-east-1:123456789012:t"}}]},"ResourceDefinitionVersion":{"Resources":[{"Id":"cam","Name":"Camera","ResourceDataContainer":{"LocalDeviceResourceData":{"SourcePath":"/dev/null"}}}]}}"#;
    g = format!("{}{extra}", &g[..g.len() - 1]);
    rig.root.write_group(&g);
    fs::create_dir_all(rig.lambda_dir("withcode")).unwrap();
    fs::write(rig.lambda_dir("withcode").join("main.py"), "x").unwrap();
    let (_, out, err) = rig.root.sprig("check", &[]);
    for want in [
        "will run: device A ",
        "will run: function spool (GGCloudSpooler",
        "will not run: function nocode (no code in ",
        "will not run: function withcode (",
        "will not run: connector c1 (",
        "will not run: resource cam (Local.Device Camera",
    ] {
        assert!(out.contains(want), "{want:?} not in:\n{out}{err}");
    }
}
