//! Stream manager (issue 14) with the stock client: PyPI greengrasssdk 1.6.1's
//! `StreamManagerClient` from a plain Python process (tests/py/stream_client.py) against the
//! real sprig binary, the group deploying `GGStreamManager` with
//! `STREAM_MANAGER_AUTHENTICATE_CLIENT` false (no Lambda runner yet: no token is live) except
//! in the refusal test. Every observation the script prints is asserted here.
#![cfg(feature = "stream-manager")]

mod common;
mod lambda_code;

use std::path::Path;
use std::process::Command;

use common::*;

struct Rig {
    root: TestRoot,
    daemon: Option<Daemon>,
    port: u16,
    env: Vec<(String, String)>,
}

fn group(port: u16, auth: bool) -> String {
    format!(
        r#"{{"FunctionDefinitionVersion":{{"Functions":[{{"Id":"sm","FunctionArn":"arn:aws:lambda:::function:GGStreamManager:1",
"FunctionConfiguration":{{"MemorySize":128000,"Pinned":true,"Timeout":3,"Environment":{{"Variables":{{
"STREAM_MANAGER_SERVER_PORT":"{port}","STREAM_MANAGER_AUTHENTICATE_CLIENT":"{auth}"}}}}}}}}]}}}}"#
    )
}

impl Rig {
    /// A root whose group deploys the stream manager; `sprig` is extra config.json `sprig` keys.
    fn new(label: &str, auth: bool, sprig: &str) -> Rig {
        Rig::with_env(label, auth, sprig, Vec::new())
    }

    /// [`Rig::new`] with extra environment for the daemon.
    fn with_env(label: &str, auth: bool, sprig: &str, env: Vec<(String, String)>) -> Rig {
        let root = TestRoot::new(label);
        if !sprig.is_empty() {
            let c = root.default_config();
            let c = c.replacen(
                "\"managedRespawn\"",
                &format!("\"sprig\": {{{sprig}}}, \"managedRespawn\""),
                1,
            );
            root.write_config(&c);
        }
        let port = free_port();
        root.write_group(&group(port, auth));
        let mut rig = Rig {
            root,
            daemon: None,
            port,
            env,
        };
        rig.start();
        rig
    }

    fn start(&mut self) {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let d = Daemon::spawn(&self.root, &["--foreground", "-i"], &env);
        let port = self.port;
        assert!(
            wait_until(PATIENCE, || std::net::TcpStream::connect((
                "127.0.0.1",
                port
            ))
            .is_ok()),
            "stream manager did not listen:\n{}",
            d.output()
        );
        self.daemon = Some(d);
    }

    fn kill9(&mut self) {
        let mut d = self.daemon.take().expect("running");
        d.signal(libc::SIGKILL);
        d.wait_exit(PATIENCE).expect("killed");
    }

    fn pid(&self) -> i32 {
        self.daemon.as_ref().expect("running").pid
    }

    fn client(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut c = Command::new(python());
        c.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/stream_client.py"))
            .args(args)
            .env("STREAM_MANAGER_SERVER_PORT", self.port.to_string())
            .env_remove("AWS_CONTAINER_AUTHORIZATION_TOKEN");
        for (k, v) in env {
            c.env(k, v);
        }
        c
    }

    /// Runs a scenario to its end; its stdout (failing with stderr and the daemon's log).
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let o = self.client(args, env).output().expect("run python");
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "{args:?} failed:\n{out}\n{}\ndaemon:\n{}",
            String::from_utf8_lossy(&o.stderr),
            self.daemon.as_ref().map(|d| d.output()).unwrap_or_default()
        );
        out
    }

    fn bg(&self, args: &[&str], name: &str) -> Bg {
        Bg::spawn(self.client(args, &[]), self.root.dir.path().join(name))
    }
}

/// Waits for a `sprig status` counter (rewritten once a second) to satisfy `ok`.
fn wait_counter(root: &TestRoot, key: &str, ok: impl Fn(u64) -> bool) {
    let mut last = 0;
    let done = wait_until(PATIENCE, || {
        last = status_counter(root, key);
        ok(last)
    });
    assert!(done, "status {key} is {last}");
}

/// The line of `out` holding `"key":`, for asserting on.
fn line<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find(|l| l.contains(&format!("\"{key}\":")))
        .unwrap_or_else(|| panic!("no {key} in:\n{out}"))
}

fn num(out: &str, key: &str) -> i64 {
    let l = line(out, key);
    let at = l.find(&format!("\"{key}\": ")).unwrap() + key.len() + 4;
    l[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect::<String>()
        .parse()
        .unwrap()
}

/// Create, 10,000 appends, ranged reads, a long poll that wakes on append while the same
/// connection gets other replies, describe, list, update, delete, the error classes, and a
/// Kinesis export accepted with a "not supported" status.
#[test]
fn stock_client_operations() {
    let rig = Rig::new("streams-ops", false, "");
    let out = rig.run(&["basic"], &[]);
    for want in [
        r#"{"create_again": "InvalidRequestException"}"#,
        r#"{"seqs_ok": true}"#,
        r#"{"ranges_ok": true}"#,
        r#"{"default_read": ["m0"]}"#,
        r#"{"not_enough": "NotEnoughMessagesException"}"#,
        r#"{"while_parked_list": ["s1", "s2"], "while_parked_append": 0, "reader_still_waiting": true}"#,
        r#"{"long_poll": ["late1", "late2"]}"#,
        r#""oldest": 0, "newest": 10001, "#,
        r#""persistence": "File", "strategy": "RejectNewData""#,
        r#"{"updated_max": 1048576}"#,
        r#"{"update_persistence": "UpdateNotAllowedException"}"#,
        r#"{"after_delete": ["s2"], "describe_deleted": "ResourceNotFoundException", "delete_missing": "ResourceNotFoundException", "append_missing": "ResourceNotFoundException"}"#,
        r#""KinesisExport", "Kinesis export is not supported by sprig yet"#,
    ] {
        assert!(out.contains(want), "{want} not in:\n{out}");
    }
    // 10,002 records of 24 + 2..6 bytes (the describe line's totalBytes).
    assert_eq!(num(&out, "bytes"), 10_000 * 24 + 48_890 + 2 * 29);
    let status = status_json(&rig.root).expect("status");
    assert!(status.contains("\"streams\":{\"port\":"), "{status}");
    wait_counter(&rig.root, "appended", |n| n == 10_003);
    // The guide's log file for the stream manager (seed-D §2.6).
    let log = std::fs::read_to_string(rig.root.log_dir().join("system/GGStreamManager.log"))
        .unwrap_or_default();
    assert!(log.contains("stream manager on 127.0.0.1:"), "{log}");
}

/// maxSize with RejectNewData (the client's InvalidRequestException) and OverwriteOldestData
/// (oldest segments dropped, appends go on), and the global `sprig.streamStoreMaxBytes`.
#[test]
fn bounds_reject_overwrite_and_store() {
    let rig = Rig::new("streams-bounds", false, "\"streamStoreMaxBytes\": 65536");
    // 4096 bytes hold 33 records of 24 + 100 bytes.
    let out = rig.run(&["bounds", "reject"], &[]);
    assert!(
        out.contains(r#"{"appended": 33, "error": "InvalidRequestException", "oldest": 0, "newest": 32, "bytes": 4092}"#),
        "{out}"
    );
    let out = rig.run(&["bounds", "overwrite"], &[]);
    assert!(out.contains(r#""appended": 100, "error": null"#), "{out}");
    assert_eq!(num(&out, "newest"), 99);
    assert!(num(&out, "oldest") > 60, "{out}");
    assert!(num(&out, "bytes") <= 4096, "{out}");
    // The whole store: 64 KiB minus what the two streams above hold, in 1024-byte records.
    let out = rig.run(&["bounds", "store"], &[]);
    assert!(
        out.contains(r#""error": "ServerOutOfMemoryException""#),
        "{out}"
    );
    let n = num(&out, "appended");
    assert!((50..=60).contains(&n), "{out}");
    wait_counter(&rig.root, "rejected_store_full", |n| n == 1);
    wait_counter(&rig.root, "rejected_stream_full", |n| n == 1);
}

/// kill -9 while a client appends to a flushOnWrite stream: after a restart every
/// acknowledged message is there, and the sequence numbers continue.
#[test]
fn kill_9_mid_append_keeps_acknowledged_messages() {
    let mut rig = Rig::new("streams-kill9", false, "");
    let mut bg = rig.bg(&["crash_append"], "crash.out");
    assert!(
        wait_until(PATIENCE, || bg.text().lines().count() >= 100),
        "{}",
        bg.errors()
    );
    rig.kill9();
    // The client would wait out its 60 s request timeout: stop it, then read what it got.
    let _ = bg.child.kill();
    let _ = bg.child.wait();
    let text = bg.text();
    let acked: Vec<i64> = text
        .lines()
        .filter_map(|l| {
            l.strip_prefix("{\"acked\": ")?
                .strip_suffix('}')?
                .parse()
                .ok()
        })
        .collect();
    let max = *acked.last().expect("acknowledged appends");
    assert_eq!(acked, (0..=max).collect::<Vec<_>>());
    rig.start();
    let out = rig.run(&["crash_check"], &[]);
    let count = num(&out, "count");
    assert!(count > max, "acknowledged {max}, found {count}:\n{out}");
    assert!(
        out.contains(r#""contiguous": true, "payloads_ok": true"#),
        "{out}"
    );
    assert_eq!(num(&out, "newest"), count - 1);
    assert_eq!(num(&out, "next"), count);
}

/// STREAM_MANAGER_AUTHENTICATE_CLIENT true: no token, or a token no running Lambda holds,
/// is refused at connect (the client's ConnectFailedException).
#[test]
fn auth_refuses_missing_and_wrong_tokens() {
    let rig = Rig::new("streams-auth", true, "");
    let out = rig.run(&["connect_refused"], &[]);
    assert!(
        out.contains(r#"{"refused": "ConnectFailedException"}"#),
        "{out}"
    );
    let out = rig.run(
        &["connect_refused"],
        &[("AWS_CONTAINER_AUTHORIZATION_TOKEN", "not-a-worker-token")],
    );
    assert!(
        out.contains(r#"{"refused": "ConnectFailedException"}"#),
        "{out}"
    );
    assert!(rig
        .daemon
        .as_ref()
        .unwrap()
        .output()
        .contains("not a running Lambda function's token"));
}

/// Garbage from raw sockets (bad version byte, bad and huge lengths, undecodable CBOR, a
/// request without an id) closes those connections; a bad request with an id is answered;
/// the stock client goes on working throughout.
#[test]
fn garbage_frames_are_refused_while_a_client_works() {
    let rig = Rig::new("streams-garbage", false, "");
    let out = rig.run(&["garbage", &rig.port.to_string()], &[]);
    assert!(
        out.contains(r#"{"closed": [true, true, true, true, true], "bad_request_answered": true, "count": 5}"#),
        "{out}"
    );
    wait_counter(&rig.root, "closed_bad_input", |n| n >= 5);
}

fn export_through_outage(format: &str) {
    let mut rig = Rig::new(&format!("streams-export-{format}"), false, "");
    let flag = rig.root.dir.path().join("restarted");
    // Port 0: the script binds its endpoint first and exports to the port it got.
    let bg = rig.bg(
        &["export", "0", "60", format, flag.to_str().unwrap()],
        "export.out",
    );
    assert!(bg.wait_for("RESTART"), "{}\n{}", bg.text(), bg.errors());
    rig.kill9();
    rig.start();
    std::fs::write(&flag, "").unwrap();
    let out = bg.finish();
    for want in [
        r#"{"before_outage": 29}"#,
        r#"{"outage_error": true, "outage_last": 29}"#,
        r#""last": 59, "error": null, "received_ok": true, "received": 60"#,
    ] {
        assert!(out.contains(want), "{want} not in:\n{out}");
    }
    // Progress in `sprig status` (human form); the exported count restarts with the daemon.
    let mut text = String::new();
    let shown = wait_until(PATIENCE, || {
        text = rig.root.sprig("status", &[]).1;
        text.contains("stream_exports: e/web: exported 30, next 60, pending 0")
    });
    assert!(shown, "{text}");
}

/// HTTP export, RAW_NOT_BATCHED (one POST per message): half exported, the endpoint down
/// while the rest is appended, sprig killed -9 and restarted, the endpoint back: every message
/// arrives exactly once, in order (progress resumed from the stream's metadata).
#[test]
fn http_export_raw_through_outage_and_restart() {
    export_through_outage("raw");
}

/// The same with JSON_BATCHED (one POST per batch of up to batchSize messages).
#[test]
fn http_export_json_through_outage_and_restart() {
    export_through_outage("json");
}

/// HTTPS export: the endpoint's certificate is issued by a CA the daemon trusts through
/// SSL_CERT_FILE (here the test's group CA), name checked against the URI's IP address.
#[test]
fn https_export_verifies_the_endpoint() {
    let probe = TestRoot::new("streams-https-ca");
    let certs = probe.certs();
    let (ca, ca_key) = (certs.join("group-ca.pem"), certs.join("group-ca.key"));
    let (key, csr, cert, ext) = (
        certs.join("web.key"),
        certs.join("web.csr"),
        certs.join("web.pem"),
        certs.join("web.ext"),
    );
    let p = |p: &std::path::PathBuf| p.to_str().unwrap().to_owned();
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &p(&key),
        "-out",
        &p(&csr),
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &p(&csr),
        "-CA",
        &p(&ca),
        "-CAkey",
        &p(&ca_key),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &p(&ext),
        "-out",
        &p(&cert),
    ]);
    let rig = Rig::with_env(
        "streams-https",
        false,
        "",
        vec![("SSL_CERT_FILE".into(), p(&ca))],
    );
    let out = rig.run(&["export_https", "0", &p(&cert), &p(&key), "5"], &[]);
    assert!(
        out.contains(r#""last": 4, "error": null, "received_ok": true"#),
        "{out}"
    );
}

/// RSS stays flat while 32 MiB (the issue's 100 MB scaled down for CI time) pass through a
/// 1 MiB OverwriteOldestData File stream in 64 KiB messages.
#[test]
fn rss_flat_through_a_small_stream() {
    let rig = Rig::new("streams-rss", false, "");
    let flag = rig.root.dir.path().join("done");
    let bg = rig.bg(&["churn", "32", flag.to_str().unwrap()], "churn.out");
    assert!(bg.wait_for("{\"mib\": 4}"), "{}", bg.errors());
    let early = vm_rss_kb(rig.pid()).unwrap();
    assert!(bg.wait_for("\"done\": true"), "{}", bg.errors());
    let late = vm_rss_kb(rig.pid()).unwrap();
    std::fs::write(&flag, "").unwrap();
    let out = bg.finish();
    assert!(num(&out, "bytes") <= 1 << 20, "{out}");
    assert!(
        late <= early + 1024,
        "RSS {early} KiB at 4 MiB, {late} KiB at 32 MiB"
    );
    let files = files_size(&rig.root.write_dir().join("ggc/var/state/streams/s0"), "");
    assert!(files <= (1 << 20) + 4096, "{files} bytes on disk");
}

/// `sprig check` reads GGStreamManager's environment: a bad port or directory is an error
/// line naming the variable; a good one adds none, and the plan says the function will run.
#[test]
fn check_reports_bad_stream_manager_settings() {
    let root = TestRoot::new("streams-check");
    root.write_group(&group(8088, false).replace(
        r#""STREAM_MANAGER_SERVER_PORT":"8088""#,
        r#""STREAM_MANAGER_SERVER_PORT":"http","STREAM_MANAGER_STORE_ROOT_DIR":"data""#,
    ));
    let (st, out, err) = root.sprig("check", &[]);
    let text = format!("{out}{err}");
    assert!(!st.success(), "{text}");
    for want in [
        r#"FunctionDefinitionVersion: GGStreamManager environment: STREAM_MANAGER_SERVER_PORT: found "http"; expected a TCP port, 1-65535"#,
        r#"STREAM_MANAGER_STORE_ROOT_DIR: found "data"; expected an absolute path"#,
    ] {
        assert!(text.contains(want), "{want} not in:\n{text}");
    }
    root.write_group(&group(8088, false));
    let (_, out, err) = root.sprig("check", &[]);
    let text = format!("{out}{err}");
    assert!(!text.contains("GGStreamManager environment"), "{text}");
    assert!(
        text.contains("will run: function sm (GGStreamManager: sprig's own stream manager"),
        "{text}"
    );
}

/// A pinned Python function (the Lambda runner, `greengrasssdk` and `cbor2` deployed with its
/// code, as the guide asks) connects with the no-argument `StreamManagerClient()`: its
/// environment carries STREAM_MANAGER_SERVER_PORT and a live AWS_CONTAINER_AUTHORIZATION_TOKEN,
/// authentication is on, and its appends land in the stream's files.
#[test]
fn a_lambda_function_connects_with_its_token() {
    let root = TestRoot::new("streams-lambda");
    let (port, ipc) = (free_port(), free_port());
    let code = root.write_dir().join("ggc/deployment/lambda/smfn");
    let packages = ["greengrasssdk", "cbor2"].map(lambda_code::python_package_dir);
    lambda_code::code_dir(&code, "streams_fn.py", &packages);
    let sm = group(port, true);
    let runtime = lambda_code::python_runtime("streams_fn", "json");
    let func = lambda_code::function_entry("smfn", &runtime, true, 30, "");
    let group = sm
        .replacen(
            r#"{"FunctionDefinitionVersion":{"#,
            &format!(
                r#"{{"FunctionDefinitionVersion":{{{},"#,
                lambda_code::NO_CONTAINER
            ),
            1,
        )
        .replacen("]}}", &format!(",{func}]}}}}"), 1);
    root.write_group(&group);
    let config = root.default_config().replace(
        r#""keepAlive": 600"#,
        &format!(r#""keepAlive": 600, "ggDaemonPort": {ipc}"#),
    );
    root.write_config(&config);
    let d = Daemon::spawn(
        &root,
        &["--foreground", "-i"],
        &[("PATH", "/usr/local/bin:/usr/bin:/bin")],
    );
    let dir = root.write_dir().join("ggc/var/state/streams/s0");
    let mut found = String::new();
    let ok = wait_until(PATIENCE, || {
        found = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
                    .map(|e| {
                        String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()).into_owned()
                    })
                    .collect()
            })
            .unwrap_or_default();
        found.contains("appended-by-a-lambda-2")
    });
    assert!(
        ok,
        "no appends from the function in {}:\n{}",
        dir.display(),
        d.output()
    );
    assert!(found.contains("appended-by-a-lambda-0") && found.contains("appended-by-a-lambda-1"));
}
