//! `sprig demo DIR`: the real binary on a temp dir. What it makes, what it prints, that a second
//! run reuses the root, and that the printed mosquitto commands talk through the core.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{free_port, run_sprig, sprig_bin, wait_until, TempDir, PATIENCE};

/// A running `sprig demo`, stopped on drop (SIGTERM, then SIGKILL) so no test leaks a daemon.
struct DemoRun {
    child: Child,
    out: PathBuf,
}

impl DemoRun {
    /// `sprig demo DIR ARGS...`, output to a file next to DIR; waits until the daemon has started.
    fn start(dir: &Path, args: &[&str]) -> DemoRun {
        let out = dir.with_extension("out");
        let log = fs::File::create(&out).unwrap();
        let child = sprig_bin()
            .arg("demo")
            .arg(dir)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn sprig demo");
        let mut run = DemoRun { child, out };
        let started = wait_until(PATIENCE, || {
            run.output().contains("started") || run.child.try_wait().ok().flatten().is_some()
        });
        assert!(started, "demo did not start:\n{}", run.output());
        assert!(
            run.child.try_wait().unwrap().is_none(),
            "demo exited:\n{}",
            run.output()
        );
        run
    }

    fn output(&self) -> String {
        fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// The printed command lines that start with `program`, in order.
    fn commands(&self, program: &str) -> Vec<String> {
        self.output()
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with(program))
            .map(String::from)
            .collect()
    }

    /// The port the demo says it uses.
    fn port(&self) -> u16 {
        let out = self.output();
        let tail = out
            .split("local MQTT port ")
            .nth(1)
            .expect("port in output");
        tail.split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }
}

impl Drop for DemoRun {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            common::signal(self.child.id() as i32, libc::SIGTERM);
            if !wait_until(Duration::from_secs(5), || {
                matches!(self.child.try_wait(), Ok(Some(_)))
            }) {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        let _ = fs::remove_file(&self.out);
    }
}

/// The AWS IoT certificate id of a PEM file, the way a user computes it:
/// `openssl x509 -outform der | sha256sum`.
fn openssl_cert_id(pem: &Path) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl x509 -in '{}' -outform der | sha256sum",
            pem.display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn demo_makes_a_root_that_sprig_check_accepts_and_prints_the_client_commands() {
    let tmp = TempDir::new("demo-files");
    let dir = tmp.path().join("demo");
    let port = free_port();
    let run = DemoRun::start(&dir, &["--port", &port.to_string()]);
    let out = run.output();

    // Files: the CA, the core, two devices; keys 0600.
    let ca = dir.join("certs/group-ca.pem");
    assert!(fs::read_to_string(&ca)
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    assert_eq!(mode(&dir.join("certs/group-ca.key")), 0o600);
    assert_eq!(mode(&dir.join("certs/core.private.key")), 0o600);
    let group = fs::read_to_string(dir.join("ggc/deployment/group/group.json")).unwrap();
    for name in ["sprig-demo-sensor", "sprig-demo-display"] {
        let cert = dir.join("devices").join(name).join("cert.pem");
        let key = dir.join("devices").join(name).join("key.pem");
        assert_eq!(mode(&key), 0o600);
        let arn = format!(
            "arn:aws:iot:us-east-1:000000000000:cert/{}",
            openssl_cert_id(&cert)
        );
        assert!(group.contains(&arn), "{arn} not in group.json:\n{group}");
        assert!(group.contains(&format!("arn:aws:iot:us-east-1:000000000000:thing/{name}")));
        // Device certificates chain to the group CA.
        let verify = Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(&ca)
            .arg(&cert)
            .output()
            .unwrap();
        assert!(verify.status.success(), "{verify:?}");
    }
    let config = fs::read_to_string(dir.join("config/config.json")).unwrap();
    assert!(config.contains(r#""iotHost": "none""#), "{config}");
    assert!(
        config.contains(&format!(r#""ggMqttPort": {port}"#)),
        "{config}"
    );

    // `sprig check` accepts the root.
    let (status, stdout, stderr) = run_sprig(["check".as_ref(), "-r".as_ref(), dir.as_os_str()]);
    assert!(status.success(), "sprig check:\n{stdout}{stderr}");

    // The printed commands: every option a stock mosquitto client needs.
    assert!(out.contains("created"), "{out}");
    let subs = run.commands("mosquitto_sub");
    let pubs = run.commands("mosquitto_pub");
    assert_eq!((subs.len(), pubs.len()), (1, 2), "{out}");
    let ca_arg = format!("--cafile {}", ca.display());
    for (line, id) in [
        (&subs[0], "sprig-demo-display"),
        (&pubs[0], "sprig-demo-sensor"),
        (&pubs[1], "sprig-demo-sensor"),
    ] {
        let cert = dir.join("devices").join(id);
        for part in [
            "-h localhost".to_string(),
            format!("-p {port}"),
            ca_arg.clone(),
            format!("--cert {}", cert.join("cert.pem").display()),
            format!("--key {}", cert.join("key.pem").display()),
            format!("-i {id}"),
            "-t ".into(),
        ] {
            assert!(line.contains(&part), "{part:?} missing in: {line}");
        }
    }
    assert!(subs[0].contains("-t 'sprig/demo/#'"), "{}", subs[0]);
    assert!(pubs[0].contains("-t sprig/demo/hello -m "), "{}", pubs[0]);
    assert!(
        pubs[1].contains("-t sprig/private/hello -m "),
        "{}",
        pubs[1]
    );
    assert!(out.contains("Not routed"), "{out}");
    let warnings: Vec<_> = out
        .lines()
        .filter(|l| l.starts_with("warning:") && l.contains("insecure mode (-i)"))
        .collect();
    assert_eq!(warnings.len(), 1, "{out}");
}

#[test]
fn running_the_demo_twice_reuses_the_root() {
    let tmp = TempDir::new("demo-twice");
    let dir = tmp.path().join("demo");
    let port = free_port();
    let read = |p: &str| fs::read(dir.join(p)).unwrap();
    let files = [
        "certs/group-ca.pem",
        "certs/group-ca.key",
        "certs/core.cert.pem",
        "devices/sprig-demo-sensor/cert.pem",
        "devices/sprig-demo-display/key.pem",
        "ggc/deployment/group/group.json",
        "config/config.json",
    ];
    let first: Vec<_> = {
        let run = DemoRun::start(&dir, &["--port", &port.to_string()]);
        assert!(run.output().contains("root created"), "{}", run.output());
        files.iter().map(|f| read(f)).collect()
    };
    // Second run, no --port: it keeps the port config.json has.
    let run = DemoRun::start(&dir, &[]);
    assert!(run.output().contains("root reused"), "{}", run.output());
    assert_eq!(run.port(), port);
    for (f, before) in files.iter().zip(&first) {
        assert_eq!(&read(f), before, "{f} changed on the second run");
    }
}

#[test]
fn demo_without_a_port_uses_8883_or_says_which_port_it_picked() {
    let tmp = TempDir::new("demo-port");
    let dir = tmp.path().join("demo");
    let run = DemoRun::start(&dir, &[]);
    let port = run.port();
    let config = fs::read_to_string(dir.join("config/config.json")).unwrap();
    assert!(
        config.contains(&format!(r#""ggMqttPort": {port}"#)),
        "{config}"
    );
    if port != 8883 {
        assert!(
            run.output().contains(&format!(
                "port 8883 is busy; the demo uses port {port} instead"
            )),
            "{}",
            run.output()
        );
    }
}

/// A printed client command running in the background (through `sh`, as a user pastes it).
fn spawn_shell(command: &str, out: &Path) -> Child {
    let log = fs::File::create(out).unwrap();
    Command::new("sh")
        .arg("-c")
        .arg(format!("exec {command}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn run_shell(command: &str) -> std::process::Output {
    Command::new("sh").arg("-c").arg(command).output().unwrap()
}

#[test]
fn printed_commands_deliver_from_sensor_to_display_and_not_the_unrouted_topic() {
    let tmp = TempDir::new("demo-e2e");
    let dir = tmp.path().join("demo");
    let run = DemoRun::start(&dir, &["--port", &free_port().to_string()]);
    let sub = &run.commands("mosquitto_sub")[0];
    let pubs = run.commands("mosquitto_pub");
    let (routed, unrouted) = (&pubs[0], &pubs[1]);

    // The display subscribes as printed, and also asks for the unrouted topic: the core must
    // refuse that filter (SUBACK 0x80) where a plain broker would grant it. `-d` prints the SUBACK;
    // stdbuf keeps mosquitto_sub's stdout line-buffered into the file.
    let sub_out = tmp.path().join("sub.out");
    let mut display = spawn_shell(
        &format!("stdbuf -oL {sub} -t 'sprig/private/#' -d"),
        &sub_out,
    );
    let sub_text = || fs::read_to_string(&sub_out).unwrap_or_default();
    let subscribed = wait_until(PATIENCE, || sub_text().contains("Subscribed (mid: 1)"));
    // Each printed publish runs once, as a user would: unrouted first, then routed.
    let unrouted_run = run_shell(unrouted);
    let routed_run = run_shell(routed);
    let arrived = wait_until(PATIENCE, || sub_text().contains("hello from the sensor"));
    let _ = display.kill();
    let _ = display.wait();
    let got = sub_text();
    let context = format!("display output:\n{got}\ncore output:\n{}", run.output());
    assert!(subscribed, "no SUBACK; {context}");
    assert!(
        got.contains("Subscribed (mid: 1): 0, 128"),
        "granted/refused wrong; {context}"
    );
    assert!(unrouted_run.status.success(), "{unrouted_run:?}");
    assert!(routed_run.status.success(), "{routed_run:?}");
    assert!(arrived, "routed message did not arrive; {context}");
    assert!(
        got.contains("sprig/demo/hello hello from the sensor"),
        "{context}"
    );
    assert!(
        !got.contains("nobody gets this"),
        "unrouted message delivered; {context}"
    );
}

#[test]
fn a_directory_with_a_space_works_and_its_paths_are_quoted() {
    let tmp = TempDir::new("demo-space");
    let dir = tmp.path().join("my demo");
    let run = DemoRun::start(&dir, &["--port", &free_port().to_string()]);
    let sub = &run.commands("mosquitto_sub")[0];
    let ca = format!("--cafile '{}'", dir.join("certs/group-ca.pem").display());
    assert!(sub.contains(&ca), "{sub}");
    let (status, stdout, stderr) = run_sprig(["check".as_ref(), "-r".as_ref(), dir.as_os_str()]);
    assert!(status.success(), "sprig check:\n{stdout}{stderr}");
}

#[test]
fn a_half_present_ca_or_a_bad_argument_is_refused_with_exit_2() {
    let tmp = TempDir::new("demo-bad");
    let dir = tmp.path().join("demo");
    fs::create_dir_all(dir.join("certs")).unwrap();
    fs::write(dir.join("certs/group-ca.pem"), "x").unwrap();
    let (status, _, stderr) = run_sprig(["demo".as_ref(), dir.as_os_str()]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("group-ca.key does not"), "{stderr}");
    // A real Greengrass root (config.json, no demo CA) is left alone.
    let real = tmp.path().join("greengrass");
    fs::create_dir_all(real.join("config")).unwrap();
    fs::write(real.join("config/config.json"), "{}").unwrap();
    let (status, _, stderr) = run_sprig(["demo".as_ref(), real.as_os_str()]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not a sprig demo root"), "{stderr}");
    assert_eq!(
        fs::read_dir(&real).unwrap().count(),
        1,
        "nothing added next to config/"
    );
    let (status, _, stderr) = run_sprig(["demo", "d", "--port", "70000"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--port"), "{stderr}");
}
