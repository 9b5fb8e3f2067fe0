//! Lambda functions on the real daemon: Python functions that vendor the real PyPI
//! `greengrasssdk` 1.6.1 (copied into each code directory, as users do with `pip install
//! --target`), an executable function speaking the IPC with curl, devices on mosquitto_pub /
//! mosquitto_sub over TLS. Function code: tests/py/lambda/.

mod cloud_peer;
mod common;
mod lambda_code;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;
use lambda_code::{arn, function_entry, python_package_dir, python_runtime};

/// One function of a test group.
struct Fun {
    name: &'static str,
    /// File in tests/py/lambda/ (copied into the code directory).
    file: &'static str,
    pinned: bool,
    timeout: u32,
    /// Extra members of FunctionConfiguration (leading comma included), e.g. RunAs.
    conf: String,
}

fn py_fun(name: &'static str, file: &'static str, pinned: bool, timeout: u32) -> Fun {
    Fun {
        name,
        file,
        pinned,
        timeout,
        conf: String::new(),
    }
}

struct Rig {
    root: TestRoot,
    daemon: Daemon,
    ca: PathBuf,
    dev: Dev,
    sink: Dev,
    ipc_port: u16,
}

/// The PyPI greengrasssdk package directory of the test venv (tests/requirements.txt pins it).
fn sdk_dir() -> PathBuf {
    python_package_dir("greengrasssdk")
}

/// Starts a daemon with `funs` (each routed dev → `in/<name>` → function, and function →
/// `out/#` → sink), plus `extra_subs`; `runtime_extra` goes into config.json's `runtime`.
fn rig(
    label: &str,
    funs: &[Fun],
    extra_subs: &[(String, String, String)],
    runtime_extra: &str,
) -> Rig {
    rig_cloud(label, funs, extra_subs, runtime_extra, None, None)
}

/// [`rig`] with one function and nothing else.
fn rig_one(label: &str, fun: Fun) -> Rig {
    rig(label, &[fun], &[], "")
}

/// [`rig`] with the cloud link pointed at a test mosquitto (`cloud_peer`).
fn rig_cloud(
    label: &str,
    funs: &[Fun],
    extra_subs: &[(String, String, String)],
    runtime_extra: &str,
    cloud: Option<(&cloud_peer::Dir, u16)>,
    ipc_port: Option<u16>,
) -> Rig {
    let root = TestRoot::new(label);
    let ca = root.certs().join("group-ca.pem");
    let devdir = root.dir.path().join("devices");
    fs::create_dir_all(&devdir).unwrap();
    let (dev, sink) = (make_device(&devdir, "dev"), make_device(&devdir, "sink"));
    let sdk = [sdk_dir()];
    let mut functions = Vec::new();
    let mut subs: Vec<(String, String, String)> = Vec::new();
    for f in funs {
        let code = root.write_dir().join("ggc/deployment/lambda").join(f.name);
        let runtime = if let Some(module) = f.file.strip_suffix(".py") {
            lambda_code::code_dir(&code, f.file, &sdk);
            // binary.py is the one Python function with EncodingType binary.
            let enc = if module == "binary" { "binary" } else { "json" };
            python_runtime(module, enc)
        } else {
            lambda_code::code_dir(&code, f.file, &[]);
            format!(
                r#""Runtime":"executable","Executable":"{}","EncodingType":"binary""#,
                f.file
            )
        };
        let env = format!(
            r#","Environment":{{"Variables":{{"CUSTOM_VAR":"custom-{}"}}}}{}"#,
            f.name, f.conf
        );
        functions.push(function_entry(f.name, &runtime, f.pinned, f.timeout, &env));
        subs.push((dev.thing_arn(), format!("in/{}", f.name), arn(f.name)));
        subs.push((arn(f.name), "out/#".into(), sink.thing_arn()));
    }
    subs.extend(extra_subs.iter().cloned());
    let group = group_json_with(&[&dev, &sink], &subs);
    let group = group.replacen(
        '{',
        &format!(
            r#"{{"FunctionDefinitionVersion":{{{},"Functions":[{}]}},"#,
            lambda_code::NO_CONTAINER,
            functions.join(",")
        ),
        1,
    );
    root.write_group(&group);
    let ipc_port = ipc_port.unwrap_or_else(free_port);
    let mut config = root.default_config();
    if let Some((dir, port)) = cloud {
        cloud_peer::install_cloud_certs(&root, dir);
        config = cloud_peer::cloud_config(&config, port);
    }
    let config = config
        .replace(
            r#""keepAlive": 600"#,
            &format!(r#""keepAlive": 600, "ggDaemonPort": {ipc_port}, "systemComponentAuthTimeout": 1000"#),
        )
        .replace(
            r#""runtime": { "cgroup""#,
            &format!(r#""runtime": {{ {runtime_extra} "cgroup""#),
        );
    root.write_config(&config);
    // A PATH every RunAs user can search (the test runner's may start in /root).
    let daemon = Daemon::spawn(
        &root,
        &["--foreground", "-i"],
        &[("PATH", "/usr/local/bin:/usr/bin:/bin")],
    );
    let rig = Rig {
        root,
        daemon,
        ca,
        dev,
        sink,
        ipc_port,
    };
    assert!(
        wait_until(PATIENCE, || status_json(&rig.root).is_some()),
        "daemon did not come up:\n{}",
        rig.daemon.output()
    );
    rig
}

fn mosq_args(rig: &Rig, dev: &Dev) -> Vec<String> {
    mosquitto_device_args(rig.root.mqtt_port, &rig.ca, &dev.cert, &dev.key, &dev.name)
}

fn publish(rig: &Rig, topic: &str, msg: &str) -> Output {
    let out = Command::new("mosquitto_pub")
        .args(mosq_args(rig, &rig.dev))
        .args(["-t", topic, "-m", msg, "-q", "1"])
        .stdin(Stdio::null())
        .output()
        .expect("run mosquitto_pub");
    assert!(out.status.success(), "mosquitto_pub: {out:?}");
    out
}

/// The sink device subscribed to `out/#` (verbose: "topic payload" lines); waits for SUBACK.
fn sink(rig: &Rig, label: &str) -> Bg {
    let out = rig.root.dir.path().join(format!("{label}.out"));
    let mut cmd = Command::new("stdbuf");
    cmd.args(["-oL", "mosquitto_sub"])
        .args(mosq_args(rig, &rig.sink))
        .args(["-d", "-v", "-t", "out/#", "-W", "120"]);
    let bg = Bg::spawn(cmd, out);
    assert!(
        bg.wait_for("SUBACK"),
        "sink did not subscribe: {}",
        bg.errors()
    );
    bg
}

/// Publishes `request` to the caller function and waits for its `n`th answer; all of them so far.
fn ask_caller(rig: &Rig, sub: &Bg, request: &str, n: usize) -> Vec<String> {
    publish(rig, "in/caller", request);
    wait_received(rig, sub, "out/caller", n)
}

/// Lines the sink received on `topic`.
fn received(bg: &Bg, topic: &str) -> Vec<String> {
    bg.text()
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{topic} ")).map(String::from))
        .collect()
}

fn wait_received(rig: &Rig, bg: &Bg, topic: &str, n: usize) -> Vec<String> {
    let ok = wait_until(PATIENCE, || received(bg, topic).len() >= n);
    assert!(
        ok,
        "expected {n} messages on {topic}, got {:?}\nlog:\n{}\nfunction logs:\n{}",
        received(bg, topic),
        log_text(&rig.root, &rig.daemon),
        user_logs(rig)
    );
    received(bg, topic)
}

/// Every function log under ggc/var/log/user, concatenated.
fn user_logs(rig: &Rig) -> String {
    let dir = rig.root.log_dir().join("user/us-east-1/123456789012");
    let mut s = String::new();
    if let Ok(rd) = fs::read_dir(&dir) {
        for e in rd.flatten() {
            s.push_str(&format!("== {}\n", e.path().display()));
            s.push_str(&fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    s
}

/// A counter of function `name` in `sprig status --json` (its entry under `functions`).
fn fn_counter(rig: &Rig, name: &str, key: &str) -> u64 {
    let s = status_json(&rig.root).unwrap_or_default();
    let Some(at) = s.find(&format!("\"arn\":\"{}\"", arn(name))) else {
        return 0;
    };
    let rest = &s[at..];
    let k = rest
        .find(&format!("\"{key}\":"))
        .expect("counter in status");
    rest[k + key.len() + 3..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .unwrap_or(0)
}

/// A JSON field's raw value text (numbers, strings without quotes) from a one-line object.
fn field(json: &str, key: &str) -> String {
    let at = json
        .find(&format!("\"{key}\": "))
        .unwrap_or_else(|| panic!("{key} not in {json}"));
    let rest = &json[at + key.len() + 4..];
    let rest = rest.strip_prefix('"').unwrap_or(rest);
    rest.chars()
        .take_while(|&c| c != ',' && c != '}' && c != '"')
        .collect()
}

#[test]
fn pinned_counter_device_to_function_to_device_in_order_as_nobody() {
    let rig = rig_one("lambda-pinned", py_fun("pinned", "counter.py", true, 5));
    let sub = sink(&rig, "sink");
    for i in 1..=3 {
        publish(&rig, "in/pinned", &format!("{{\"n\": {i}}}"));
    }
    let got = wait_received(&rig, &sub, "out/pinned", 3);
    let counts: Vec<String> = got.iter().map(|m| field(m, "count")).collect();
    assert_eq!(counts, ["1", "2", "3"], "{got:?}");
    let pid: i32 = field(&got[0], "pid").parse().unwrap();
    assert!(
        got.iter().all(|m| field(m, "pid") == pid.to_string()),
        "one worker: {got:?}"
    );
    // The event is the JSON payload; the context carries the subject; the environment holds
    // the core's identity and the function's own variables.
    assert!(got[1].contains(r#""event": {"n": 2}"#), "{}", got[1]);
    assert_eq!(field(&got[0], "subject"), "in/pinned");
    assert_eq!(field(&got[0], "thing"), "sprig-test-core");
    assert_eq!(field(&got[0], "region"), "us-east-1");
    assert_eq!(field(&got[0], "custom_var"), "custom-pinned");
    // No RunAs anywhere and no ggc_user here: nobody/nogroup, no supplementary groups.
    // (Only root can switch identities; as another user the workers run as that user.)
    if sprig::sys::euid() != 0 {
        eprintln!("RunAs checks SKIPPED: not running as root");
    } else {
        check_nobody(pid);
    }
    // (Under qemu-user, scripts/test-cross.sh sets SPRIG_TEST_QEMU: the emulator runs threads
    // of its own, so the count says nothing there.)
    if std::env::var_os("SPRIG_TEST_QEMU").is_none() {
        assert_eq!(
            threads(rig.daemon.pid),
            Some(1),
            "the daemon stays one thread with workers running"
        );
    }
    assert!(wait_until(PATIENCE, || fn_counter(
        &rig,
        "pinned",
        "invocations"
    ) >= 3));
    // The function's stdout (print) reached its log file.
    assert!(
        wait_until(PATIENCE, || user_logs(&rig).contains("invoked 3")),
        "{}",
        user_logs(&rig)
    );
    // kill -9 of the daemon takes the worker with it (PR_SET_PDEATHSIG).
    rig.daemon.signal(libc::SIGKILL);
    assert!(
        wait_until(PATIENCE, || !alive(pid)),
        "worker {pid} outlived the daemon"
    );
}

/// The whoami function's report and /proc agree: uid 1234, gid 2345, no supplementary groups.
fn check_run_as(report: &str) {
    assert_eq!(
        (field(report, "uid"), field(report, "gid")),
        ("1234".into(), "2345".into())
    );
    let pid: i32 = field(report, "pid").parse().unwrap();
    let uid = proc_status_field(pid, "Uid").unwrap();
    assert!(uid.split_whitespace().all(|u| u == "1234"), "{uid}");
    let gid = proc_status_field(pid, "Gid").unwrap();
    assert!(gid.split_whitespace().all(|g| g == "2345"), "{gid}");
    assert_eq!(proc_status_field(pid, "Groups").unwrap_or_default(), "");
}

fn check_nobody(pid: i32) {
    let first = |k: &str| {
        proc_status_field(pid, k)
            .unwrap()
            .split_whitespace()
            .next()
            .map(String::from)
    };
    assert_eq!(first("Uid").as_deref(), Some("65534"));
    assert_eq!(first("Gid").as_deref(), Some("65534"));
    assert_eq!(proc_status_field(pid, "Groups").unwrap_or_default(), "");
}

#[test]
fn on_demand_runs_in_parallel_then_reuses_a_warm_worker() {
    let rig = rig_one(
        "lambda-ondemand",
        py_fun("ondemand", "counter.py", false, 20),
    );
    let sub = sink(&rig, "sink");
    for _ in 0..3 {
        publish(&rig, "in/ondemand", r#"{"sleep": 5}"#);
    }
    let got = wait_received(&rig, &sub, "out/ondemand", 3);
    let counts: Vec<String> = got.iter().map(|m| field(m, "count")).collect();
    assert_eq!(
        counts,
        ["1", "1", "1"],
        "three workers in parallel: {got:?}"
    );
    let mut pids: Vec<String> = got.iter().map(|m| field(m, "pid")).collect();
    pids.sort();
    pids.dedup();
    assert_eq!(pids.len(), 3, "{got:?}");
    publish(&rig, "in/ondemand", "{}");
    let got = wait_received(&rig, &sub, "out/ondemand", 4);
    assert_eq!(
        field(&got[3], "count"),
        "2",
        "a warm worker was reused: {got:?}"
    );
    assert!(pids.contains(&field(&got[3], "pid")));
    // SIGTERM: every worker is stopped and reaped before the daemon exits.
    let pids: Vec<i32> = pids.iter().map(|p| p.parse().unwrap()).collect();
    rig.daemon.signal(libc::SIGTERM);
    let mut daemon = rig.daemon;
    assert!(daemon.wait_exit(PATIENCE).is_some());
    for p in pids {
        assert!(!alive(p), "worker {p} outlived the daemon's SIGTERM");
    }
}

#[test]
fn function_invokes_function_request_response_event_and_timeout() {
    let slow = py_fun("slow", "counter.py", false, 2);
    let rig = rig(
        "lambda-invoke",
        &[
            py_fun("caller", "caller.py", false, 30),
            py_fun("callee", "counter.py", false, 10),
            slow,
        ],
        &[],
        "",
    );
    let sub = sink(&rig, "sink");
    let callee = arn("callee");
    let got = ask_caller(
        &rig,
        &sub,
        &format!(r#"{{"target": "{callee}", "payload": {{"x": 1}}}}"#),
        1,
    );
    assert!(
        got[0].contains(r#"\"count\": 1"#) && got[0].contains(r#""error": """#),
        "RequestResponse returns the handler's result: {got:?}"
    );
    // Event: the caller's answer comes back at once, before the callee (sleeping 4 s) publishes.
    let got = ask_caller(
        &rig,
        &sub,
        &format!(r#"{{"target": "{callee}", "type": "Event", "payload": {{"sleep": 4}}}}"#),
        2,
    );
    assert_eq!(got[1], r#"{"payload": "", "error": ""}"#);
    let callee_msgs = wait_received(&rig, &sub, "out/callee", 2);
    let text = sub.text();
    let caller_at = text.find(&got[1]).unwrap();
    let callee_at = text.find(&callee_msgs[1]).unwrap();
    assert!(caller_at < callee_at, "Event did not wait:\n{text}");
    // Timeout: the slow function sleeps past its 2 s; the invoker gets Unhandled.
    let slow = arn("slow");
    let got = ask_caller(
        &rig,
        &sub,
        &format!(r#"{{"target": "{slow}", "payload": {{"sleep": 30}}}}"#),
        3,
    );
    assert!(
        got[2].contains(r#""error": "Unhandled""#) && got[2].contains("timed out"),
        "{got:?}"
    );
    assert!(wait_until(PATIENCE, || fn_counter(
        &rig, "slow", "timeouts"
    ) >= 1));
    // A worker's token does not fetch another function's work: 403.
    let got = ask_caller(&rig, &sub, &format!(r#"{{"steal": "{callee}"}}"#), 4);
    assert_eq!(got[3], r#"{"steal": 403}"#);
    // Shadow calls go straight to the local shadow service (no subscription needed): the
    // update is accepted and read back; a thing without a shadow is the SDK's ShadowError.
    let got = ask_caller(&rig, &sub, r#"{"shadow": "dev", "missing": "ghost"}"#, 5);
    assert!(
        got[4].contains(r#""shadow": {"reported": {"color": "green"}}"#),
        "{got:?}"
    );
    assert!(
        got[4].contains("missing_error") && got[4].contains("error code 404"),
        "{got:?}"
    );
}

#[test]
fn crashing_pinned_function_restarts() {
    let rig = rig_one("lambda-crash", py_fun("crasher", "crasher.py", true, 5));
    let sub = sink(&rig, "sink");
    // The first start may have published before the sink subscribed: crash it once to be sure
    // a start happens while we listen, then once more.
    publish(&rig, "in/crasher", "{}");
    let first = wait_received(&rig, &sub, "out/crasher", 1);
    publish(&rig, "in/crasher", "{}");
    let got = wait_received(&rig, &sub, "out/crasher", 2);
    assert_ne!(
        field(&first[0], "started"),
        field(&got[1], "started"),
        "{got:?}"
    );
    assert!(wait_until(PATIENCE, || fn_counter(
        &rig, "crasher", "restarts"
    ) >= 2));
}

/// One raw HTTP exchange with the IPC server: the response text ("" when closed unanswered).
fn ipc_exchange(port: u16, request: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn tokens_are_checked_and_silent_connections_closed() {
    let rig = rig_one("lambda-tokens", py_fun("pinned", "counter.py", true, 5));
    let target = arn("pinned");
    let missing = ipc_exchange(
        rig.ipc_port,
        &format!("GET /2016-11-01/functions/{target}/work HTTP/1.1\r\nHost: x\r\n\r\n"),
    );
    assert!(missing.starts_with("HTTP/1.1 401"), "{missing}");
    let forged = ipc_exchange(
        rig.ipc_port,
        &format!("POST /2016-11-01/functions/{target} HTTP/1.1\r\nAuthorization: 00112233445566778899aabbccddeeff\r\nContent-Length: 2\r\n\r\n{{}}"),
    );
    assert!(forged.starts_with("HTTP/1.1 401"), "{forged}");
    let garbage = ipc_exchange(rig.ipc_port, "\x16\x03\x01 not http\r\n\r\n");
    assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage}");
    // Silent: closed after systemComponentAuthTimeout (1 s here) without an answer.
    let silent = ipc_exchange(rig.ipc_port, "GET /2016-11-01/func");
    assert_eq!(silent, "");
    assert!(wait_until(PATIENCE, || status_counter(
        &rig.root,
        "ipc_auth_timeouts"
    ) >= 1));
    assert!(wait_until(PATIENCE, || status_counter(
        &rig.root,
        "ipc_refused_token"
    ) >= 2));
    // The worker still runs undisturbed.
    let sub = sink(&rig, "sink");
    publish(&rig, "in/pinned", "{}");
    wait_received(&rig, &sub, "out/pinned", 1);
}

#[test]
fn run_as_uid_executable_with_curl_and_binary_encoding() {
    let mut who = py_fun("whoami", "counter.py", true, 5);
    who.conf = r#","Execution":{"RunAs":{"Uid":1234,"Gid":2345}}"#.into();
    // Environment is written once by rig(); RunAs sits beside it in the CloudFormation shape.
    let mut exec = Fun {
        name: "exec",
        file: "exec.sh",
        pinned: true,
        timeout: 5,
        conf: String::new(),
    };
    exec.conf = r#","ExecArgs":"'tail arg'""#.into();
    let rig = rig(
        "lambda-misc",
        &[who, exec, py_fun("binary", "binary.py", false, 5)],
        &[],
        "",
    );
    let sub = sink(&rig, "sink");
    publish(&rig, "in/whoami", "{}");
    let got = wait_received(&rig, &sub, "out/whoami", 1);
    if sprig::sys::euid() != 0 {
        eprintln!("RunAs checks SKIPPED: not running as root");
    } else {
        check_run_as(&got[0]);
    }

    publish(&rig, "in/binary", "\u{1}abc");
    let got = wait_received(&rig, &sub, "out/binary", 1);
    assert_eq!(got[0], "raw:cba\u{1}");

    publish(&rig, "in/exec", "hello");
    let got = wait_received(&rig, &sub, "out/exec", 1);
    assert_eq!(got[0], "exec got hello tail arg");
}

/// AllOrError: every publish the SDK answered as published is in stuck's queue, none was
/// dropped. (Before the check and the delivery were one step, a slow core — qemu-user — let
/// items still in the work queue take the room: 80 "published", 64 queued, the rest dropped.)
#[test]
fn all_or_error_publishes_fail_while_the_target_queue_is_full() {
    let rig = rig(
        "lambda-allorerror",
        &[
            py_fun("caller", "caller.py", false, 30),
            // Never answers within the test: its queue fills up.
            py_fun("stuck", "counter.py", true, 60),
        ],
        &[(arn("caller"), "to/stuck".into(), arn("stuck"))],
        "",
    );
    let sub = sink(&rig, "sink");
    // AllOrError: stuck sleeps in its first invocation; its queue takes FUNCTION_QUEUE_DEPTH
    // more; after that each publish fails at once (and BestEffort ones are dropped silently).
    publish(&rig, "in/stuck", r#"{"sleep": 50}"#);
    let got = ask_caller(
        &rig,
        &sub,
        r#"{"publish": "to/stuck", "policy": "AllOrException", "n": 80}"#,
        1,
    );
    let (ok, failed): (u32, u32) = (
        field(&got[0], "published").parse().unwrap(),
        field(&got[0], "failed").parse().unwrap(),
    );
    assert_eq!(ok + failed, 80);
    assert!(failed > 0, "{got:?}");
    assert!(got[0].contains("AllOrError"), "{got:?}");
    // stuck still sleeps in its first invocation: what was published waits in its queue.
    // (`sprig status` is a snapshot the daemon refreshes: wait for one taken after the calls.)
    assert!(
        wait_until(PATIENCE, || fn_counter(&rig, "stuck", "queued")
            == u64::from(ok)),
        "{got:?}\n{}",
        status_json(&rig.root).unwrap_or_default()
    );
    assert_eq!(fn_counter(&rig, "stuck", "dropped"), 0, "{got:?}");
}

#[test]
fn cloud_triggers_a_function_that_publishes_to_the_cloud() {
    let cloud = cloud_peer::Dir::new("lambda-cloud");
    cloud_peer::certs(&cloud.0);
    let mosq = cloud_peer::Mosquitto::start(&cloud);
    let f = arn("relay");
    let rig = rig_cloud(
        "lambda-cloud",
        &[py_fun("relay", "counter.py", true, 5)],
        &[
            ("cloud".into(), "cmd/#".into(), f.clone()),
            (f.clone(), "out/#".into(), "cloud".into()),
        ],
        "",
        Some((&cloud, mosq.port)),
        None,
    );
    let _sub = cloud_peer::cloud_sub(&cloud, &mosq, "out/#", "up.txt");
    // The core subscribes to cmd/# once its link is up; publish until the function answers.
    let answered = wait_until(PATIENCE, || {
        cloud_peer::cloud_pub(&cloud, &mosq, "cmd/go", r#"{"from": "cloud"}"#, "1");
        wait_until(std::time::Duration::from_secs(2), || {
            !cloud_peer::lines(&cloud, "up.txt").is_empty()
        })
    });
    let up = cloud_peer::lines(&cloud, "up.txt");
    assert!(
        answered,
        "nothing reached the cloud:\n{}\n{}",
        log_text(&rig.root, &rig.daemon),
        user_logs(&rig)
    );
    assert!(up[0].starts_with("out/relay {"), "{up:?}");
    assert!(up[0].contains(r#""subject": "cmd/go""#), "{up:?}");
}

/// Benchmark (not a test; timings never assert): device → pinned Python function → device,
/// next to device → device through the same broker. Run with
/// `cargo test --release --test lambda bench_lambda -- --ignored --nocapture`.
#[test]
#[ignore]
fn bench_lambda_round_trips() {
    let rig = rig_one("lambda-bench", py_fun("echo", "echo.py", true, 5));
    // The device hears itself directly on loop/# (the message path without a function), and
    // the echo function's out/# (routed to the sink device in rig(); add dev too).
    let dev = rig.dev.thing_arn();
    let group = fs::read_to_string(rig.root.group_file()).unwrap();
    let extra = format!(
        r#"{{"Id":"b1","Source":"{dev}","Subject":"loop/#","Target":"{dev}"}},{{"Id":"b2","Source":"{e}","Subject":"out/#","Target":"{dev}"}},"#,
        e = arn("echo")
    );
    drop(rig.daemon);
    rig.root.write_group(&group.replacen(
        r#""Subscriptions":["#,
        &format!(r#""Subscriptions":[{extra}"#),
        1,
    ));
    let daemon = Daemon::spawn(
        &rig.root,
        &["--foreground", "-i"],
        &[("PATH", "/usr/local/bin:/usr/bin:/bin")],
    );
    assert!(wait_until(PATIENCE, || status_json(&rig.root).is_some()));
    let run = |pub_topic: &str, filter: &str| {
        let out = Command::new(python())
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/bench_lambda_client.py"))
            .arg(rig.root.mqtt_port.to_string())
            .arg(&rig.ca)
            .arg(&rig.dev.cert)
            .arg(&rig.dev.key)
            .arg(&rig.dev.name)
            .args([pub_topic, filter, "2000", "32"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let direct = run("loop/x", "loop/#");
    let function = run("in/echo", "out/#");
    println!("device -> device:\n{direct}device -> function -> device:\n{function}");
    let pid = daemon.pid;
    println!(
        "daemon VmRSS {} KiB, threads {:?}",
        vm_rss_kb(pid).unwrap_or(0),
        threads(pid)
    );
}

#[test]
fn a_deployment_restarts_only_the_function_with_new_code() {
    let rig = rig(
        "lambda-deploy",
        &[
            py_fun("keep", "counter.py", true, 5),
            py_fun("change", "counter.py", true, 5),
        ],
        &[],
        "",
    );
    let sub = sink(&rig, "sink");
    publish(&rig, "in/keep", "{}");
    publish(&rig, "in/change", "{}");
    let keep1 = wait_received(&rig, &sub, "out/keep", 1);
    let change1 = wait_received(&rig, &sub, "out/change", 1);
    // New code for `change` (same handler, a fresh directory) and one more subscription, so
    // the group differs too; `sprig deploy` installs both and the daemon applies them hot.
    let code = rig.root.dir.path().join("new-change");
    lambda_code::code_dir(&code, "counter.py", &[sdk_dir()]);
    let group = fs::read_to_string(rig.root.group_file()).unwrap().replacen(
        r#""Subscriptions":["#,
        &format!(
            r#""Subscriptions":[{{"Id":"extra","Source":"{}","Subject":"extra/t","Target":"{}"}},"#,
            rig.dev.thing_arn(),
            rig.sink.thing_arn()
        ),
        1,
    );
    let new_group = rig.root.dir.path().join("new-group.json");
    fs::write(&new_group, group).unwrap();
    let lambda_arg = format!("change={}", code.display());
    let (st, out, err) = rig.root.sprig(
        "deploy",
        &[new_group.to_str().unwrap(), "--lambda", &lambda_arg],
    );
    assert!(st.success(), "sprig deploy: {out}{err}");
    assert!(
        wait_until(PATIENCE, || log_text(&rig.root, &rig.daemon)
            .contains("new code deployed; restarting it")),
        "{}",
        log_text(&rig.root, &rig.daemon)
    );
    publish(&rig, "in/keep", "{}");
    publish(&rig, "in/change", "{}");
    let keep2 = wait_received(&rig, &sub, "out/keep", 2);
    let change2 = wait_received(&rig, &sub, "out/change", 2);
    assert_eq!(
        field(&keep2[1], "count"),
        "2",
        "keep kept its worker: {keep2:?}"
    );
    assert_eq!(field(&keep2[1], "pid"), field(&keep1[0], "pid"));
    assert_eq!(
        field(&change2[1], "count"),
        "1",
        "change restarted: {change2:?}"
    );
    assert_ne!(field(&change2[1], "pid"), field(&change1[0], "pid"));
}

#[test]
fn a_busy_ipc_port_is_retried_while_the_broker_serves() {
    // Someone holds ggDaemonPort when the core starts: the core still starts (devices work),
    // says so, and binds the port once it is free.
    let port = free_port();
    let holder = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let rig = rig_cloud(
        "lambda-busy",
        &[py_fun("pinned", "counter.py", true, 5)],
        &[],
        "",
        None,
        Some(port),
    );
    assert!(status_json(&rig.root)
        .unwrap()
        .contains(r#""ipc_listening":false"#));
    drop(holder);
    assert!(wait_until(PATIENCE, || status_json(&rig.root)
        .is_some_and(|s| s.contains(r#""ipc_listening":true"#))));
    let sub = sink(&rig, "sink");
    publish(&rig, "in/pinned", "{}");
    wait_received(&rig, &sub, "out/pinned", 1);
}
