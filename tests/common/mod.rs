//! Helpers shared by the integration tests: the sprig command, temp Greengrass roots, a daemon
//! guard that never leaks processes, polling, and /proc readers.
//!
//! Compiled into every test crate (`mod common;`), so not every crate uses every helper.
#![allow(dead_code)]

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Generous bound for anything a test waits for: CI is a loaded 2-core machine, and cross runs
/// go through qemu. Tests poll up to this and never assert on how fast it happened.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The command that runs sprig: `$SPRIG_TEST_BIN` (another binary, or a wrapper script such as
/// a qemu runner) when set, else the binary cargo built for this package.
pub fn sprig_bin() -> Command {
    match std::env::var_os("SPRIG_TEST_BIN") {
        Some(bin) if !bin.is_empty() => Command::new(bin),
        _ => Command::new(env!("CARGO_BIN_EXE_sprig")),
    }
}

/// `sprig ARGS...` with stdin closed, run to completion; returns (status, stdout, stderr).
pub fn run_sprig<I, S>(args: I) -> (ExitStatus, String, String)
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = sprig_bin()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run sprig");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A TCP port that was free a moment ago (bound to port 0 and released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Polls `cond` every 20 ms until it holds (true) or `timeout` passes (false).
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A fresh, empty temp directory, removed (recursively) on drop unless `SPRIG_KEEP_TEST_DIRS`
/// is set.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "sprig-{label}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("SPRIG_KEEP_TEST_DIRS").is_none() {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// A Greengrass root on a temp dir:
///
/// ```text
/// DIR/root/config/config.json   offline (iotHost "none"), ggMqttPort = mqtt_port
/// DIR/root/certs/               empty; tests that need TLS put certs here
/// DIR/write/                    writeDirectory (ggc/deployment, ggc/var/log)
/// DIR/run/                      pidFileDirectory
/// ```
pub struct TestRoot {
    pub dir: TempDir,
    pub mqtt_port: u16,
}

impl TestRoot {
    /// A root with the default offline config.json on a free port.
    pub fn new(label: &str) -> TestRoot {
        let root = TestRoot::empty(label);
        root.write_config(&root.default_config());
        root.write_group_ca();
        root
    }

    /// `certs/group-ca.pem` and `group-ca.key` (EC P-256, made by the openssl CLI): the local
    /// broker needs a server identity to start (issue 3 §1 (b)), and issues it from this CA.
    pub fn write_group_ca(&self) {
        let (key, cert) = (
            self.certs().join("group-ca.key"),
            self.certs().join("group-ca.pem"),
        );
        let ca_ext = [
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ];
        openssl_self_signed(&key, &cert, "sprig test group CA", &ca_ext);
    }

    /// The directory layout without config.json.
    pub fn empty(label: &str) -> TestRoot {
        let dir = TempDir::new(label);
        for sub in ["root/config", "root/certs", "write", "run"] {
            fs::create_dir_all(dir.path().join(sub)).expect("create root dirs");
        }
        TestRoot {
            dir,
            mqtt_port: free_port(),
        }
    }

    /// `-r` argument: the read-only root.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }
    pub fn certs(&self) -> PathBuf {
        self.root().join("certs")
    }
    pub fn write_dir(&self) -> PathBuf {
        self.dir.path().join("write")
    }
    pub fn pid_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }
    pub fn pid_file(&self) -> PathBuf {
        self.pid_dir().join("greengrassd.pid")
    }
    pub fn config_file(&self) -> PathBuf {
        self.root().join("config").join("config.json")
    }
    pub fn group_file(&self) -> PathBuf {
        self.write_dir().join("ggc/deployment/group/group.json")
    }
    /// `WRITE_DIR/ggc/var/log`.
    pub fn log_dir(&self) -> PathBuf {
        self.write_dir().join("ggc/var/log")
    }
    /// Where [`Daemon`] sends the child's stdout and stderr.
    pub fn stderr_file(&self) -> PathBuf {
        self.dir.path().join("daemon.stderr")
    }

    /// The default config.json: offline, legacy cert paths under certs/, write and pid
    /// directories inside the temp dir.
    pub fn default_config(&self) -> String {
        format!(
            r#"{{
  "coreThing": {{
    "caPath": "root.ca.pem",
    "certPath": "core.cert.pem",
    "keyPath": "core.private.key",
    "thingArn": "arn:aws:iot:us-east-1:123456789012:thing/sprig-test-core",
    "iotHost": "none",
    "ggHost": "none",
    "ggMqttPort": {port},
    "keepAlive": 600
  }},
  "runtime": {{ "cgroup": {{ "useSystemd": "no" }} }},
  "managedRespawn": false,
  "writeDirectory": "{write}",
  "pidFileDirectory": "{run}"
}}
"#,
            port = self.mqtt_port,
            write = self.write_dir().display(),
            run = self.pid_dir().display(),
        )
    }

    pub fn write_config(&self, text: &str) {
        fs::write(self.config_file(), text).expect("write config.json");
    }

    /// Writes group.json (creating ggc/deployment/group).
    pub fn write_group(&self, text: &str) {
        let path = self.group_file();
        fs::create_dir_all(path.parent().unwrap()).expect("create group dir");
        fs::write(path, text).expect("write group.json");
    }

    /// The pid in the pid file, if it exists and parses.
    pub fn pid_from_file(&self) -> Option<i32> {
        fs::read_to_string(self.pid_file())
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Runs `sprig COMMAND -r ROOT EXTRA...` to completion: (status, stdout, stderr).
    pub fn sprig(&self, command: &str, extra: &[&str]) -> (ExitStatus, String, String) {
        let mut args: Vec<OsString> =
            vec![command.into(), "-r".into(), self.root().into_os_string()];
        args.extend(extra.iter().map(Into::into));
        run_sprig(args)
    }

    /// Starts `sprig start -r ROOT --foreground -i` (plus `extra` args and `env`).
    pub fn start(&self) -> Daemon {
        Daemon::spawn(self, &["--foreground", "-i"], &[])
    }

    /// [`TestRoot::start`], then waits until `sprig status` answers (panics with the daemon's
    /// output when it does not).
    pub fn start_ready(&self) -> Daemon {
        let daemon = self.start();
        assert!(
            wait_until(PATIENCE, || status_json(self).is_some()),
            "daemon did not come up:\n{}",
            daemon.output()
        );
        daemon
    }

    /// Group devices `names` (see [`make_device`]) in `DIR/devices`.
    pub fn make_devices(&self, names: &[&str]) -> Vec<Dev> {
        let devdir = self.dir.path().join("devices");
        fs::create_dir_all(&devdir).unwrap();
        names.iter().map(|n| make_device(&devdir, n)).collect()
    }
}

/// A running `sprig start`, killed on drop (SIGTERM, then SIGKILL after a while) so no test
/// leaks a daemon. stdout and stderr go to [`TestRoot::stderr_file`].
pub struct Daemon {
    pub child: Option<Child>,
    pub pid: i32,
    stderr: PathBuf,
}

impl Daemon {
    /// Spawns `sprig start -r ROOT ARGS...` with extra environment.
    pub fn spawn(root: &TestRoot, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        fs::File::create(root.stderr_file()).expect("create stderr file");
        let log = fs::OpenOptions::new()
            .append(true)
            .open(root.stderr_file())
            .expect("open stderr file");
        Daemon::spawn_with_stderr(root, args, env, log.into())
    }

    /// [`Daemon::spawn`] with stderr going to `stderr` (stdout still appends to the stderr
    /// file).
    pub fn spawn_with_stderr(
        root: &TestRoot,
        args: &[&str],
        env: &[(&str, &str)],
        stderr: Stdio,
    ) -> Daemon {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(root.stderr_file())
            .expect("open stderr file");
        let mut cmd = sprig_bin();
        cmd.arg("start")
            .arg("-r")
            .arg(root.root())
            .args(args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn sprig start");
        Daemon {
            pid: child.id() as i32,
            child: Some(child),
            stderr: root.stderr_file(),
        }
    }

    /// Everything the daemon has written to stdout/stderr so far.
    pub fn output(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The exit status if the process has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// Polls until the process exits or `timeout` passes.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut status = None;
        wait_until(timeout, || {
            status = self.try_wait();
            status.is_some()
        });
        status
    }

    /// Sends a signal to the daemon.
    pub fn signal(&self, sig: i32) {
        signal(self.pid, sig);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(None) = child.try_wait() {
                signal(self.pid, libc::SIGTERM);
                let exited = wait_until(Duration::from_secs(5), || {
                    matches!(child.try_wait(), Ok(Some(_)))
                });
                if !exited {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
    }
}

/// `kill(pid, sig)`; errors (the process is gone) are ignored.
pub fn signal(pid: i32, sig: i32) {
    let _ = sprig::sys::kill(pid, sig);
}

/// True when a process with this pid exists (and is not a zombie).
pub fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the ")" that closes the command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// A field of /proc/PID/status (`Threads`, `VmRSS`, ...), value text without the key.
pub fn proc_status_field(pid: i32, key: &str) -> Option<String> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == key).then(|| v.trim().to_string())
    })
}

/// `Threads:` of the process.
pub fn threads(pid: i32) -> Option<u32> {
    proc_status_field(pid, "Threads")?.parse().ok()
}

/// `VmRSS:` of the process, in KiB.
pub fn vm_rss_kb(pid: i32) -> Option<u64> {
    proc_status_field(pid, "VmRSS")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Number of open file descriptors of the process (entries of /proc/PID/fd).
pub fn fd_count(pid: i32) -> io::Result<usize> {
    Ok(fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// Total size in bytes of the regular files directly in `dir` whose names start with
/// `prefix` (a log and its rotated siblings).
pub fn files_size(dir: &Path, prefix: &str) -> u64 {
    fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// mosquitto_pub/mosquitto_sub arguments for a device on sprig's local broker (TLS on
/// localhost:`port`, client certificate, client id).
pub fn mosquitto_device_args(
    port: u16,
    ca: &Path,
    cert: &Path,
    key: &Path,
    client_id: &str,
) -> Vec<String> {
    let s = |p: &Path| p.display().to_string();
    vec![
        "-h".into(),
        "localhost".into(),
        "-p".into(),
        port.to_string(),
        "--cafile".into(),
        s(ca),
        "--cert".into(),
        s(cert),
        "--key".into(),
        s(key),
        "-i".into(),
        client_id.into(),
    ]
}

/// Runs `openssl ARGS...` in `dir` and asserts it succeeded.
pub fn openssl_in(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new("openssl");
    cmd.args(args).current_dir(dir);
    run_openssl(&mut cmd)
}

/// Runs the openssl CLI with `args`; panics with its stderr when it fails.
pub fn openssl(args: &[&str]) -> Output {
    run_openssl(Command::new("openssl").args(args))
}

fn run_openssl(cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .expect("run openssl (the tests need the openssl CLI)");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A self-signed EC P-256 certificate and its key (PEM), made by the openssl CLI.
pub fn openssl_self_signed(key: &Path, cert: &Path, common_name: &str, extra: &[&str]) {
    run_openssl(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
            ])
            .arg("-keyout")
            .arg(key)
            .arg("-out")
            .arg(cert)
            .args(["-days", "30", "-subj", &format!("/CN={common_name}")])
            .args(extra),
    );
}

/// Account and region of the test groups' ARNs.
pub const TEST_ARN: &str = "arn:aws:iot:us-east-1:123456789012";

/// A group device made by the openssl CLI: thing name, certificate, key, certificate id.
pub struct Dev {
    pub name: String,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub id: String,
}

impl Dev {
    /// `arn:aws:iot:...:thing/NAME`.
    pub fn thing_arn(&self) -> String {
        format!("{TEST_ARN}:thing/{}", self.name)
    }

    /// This device's entry in group.json's `DeviceDefinitionVersion.Devices`.
    pub fn group_entry(&self) -> String {
        format!(
            r#"{{"Id":"{n}","ThingArn":"{t}","CertificateArn":"{TEST_ARN}:cert/{id}","SyncShadow":false}}"#,
            n = self.name,
            t = self.thing_arn(),
            id = self.id
        )
    }
}

/// A self-signed EC P-256 certificate for `name` in `dir`, and its AWS IoT certificate id
/// (SHA-256 of the DER), both from the openssl CLI.
pub fn make_device(dir: &Path, name: &str) -> Dev {
    let cert = dir.join(format!("{name}.cert.pem"));
    let key = dir.join(format!("{name}.key.pem"));
    let der = dir.join(format!("{name}.cert.der"));
    let (c, d) = (cert.to_str().unwrap(), der.to_str().unwrap());
    openssl_self_signed(&key, &cert, name, &[]);
    openssl(&["x509", "-in", c, "-outform", "DER", "-out", d]);
    let id = String::from_utf8_lossy(&openssl(&["dgst", "-sha256", "-r", d]).stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(id.len(), 64, "certificate id of {name}");
    Dev {
        name: name.to_string(),
        cert,
        key,
        id,
    }
}

/// The Python with the pinned clients: `$SPRIG_TEST_PYTHON`, else the worktree's `.venv`.
pub fn python() -> PathBuf {
    match std::env::var_os("SPRIG_TEST_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"),
    }
}

/// `python tests/py/SCRIPT` with the pinned clients (see [`python`]).
pub fn py_script(script: &str) -> Command {
    let mut c = Command::new(python());
    c.arg(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/py")
            .join(script),
    );
    c
}

/// `sprig status -r ROOT --json`, when the daemon is up.
pub fn status_json(root: &TestRoot) -> Option<String> {
    let (st, out, _) = run_sprig(["status", "-r", root.root().to_str().unwrap(), "--json"]);
    st.success().then_some(out)
}

/// A counter from `sprig status --json` (e.g. `"queue_full"`), by key name.
pub fn status_counter(root: &TestRoot, key: &str) -> u64 {
    let s = status_json(root).expect("sprig status");
    let at = s
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("{key} not in {s}"));
    s[at + key.len() + 3..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .unwrap()
}

/// `work_queue.accepted` from `sprig status --json` (messages the queue took); 0 if the daemon
/// is not up. (`accepted` alone would find `connections.accepted` first.)
pub fn status_queue_accepted(root: &TestRoot) -> u64 {
    let s = status_json(root).unwrap_or_default();
    let Some(at) = s.find("\"work_queue\"") else {
        return 0;
    };
    let rest = &s[at..];
    let Some(k) = rest.find("\"accepted\":") else {
        return 0;
    };
    rest[k + 11..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or(0)
}

/// A background client whose stdout goes to a file (poll it with `wait_for`); killed on drop.
pub struct Bg {
    pub child: Child,
    pub out: PathBuf,
}

impl Bg {
    /// Spawns `cmd` with stdout to `out` and stderr to `out` + `.err`.
    pub fn spawn(mut cmd: Command, out: PathBuf) -> Bg {
        let f = fs::File::create(&out).unwrap();
        let e = fs::File::create(out.with_extension("err")).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(f)
            .stderr(e)
            .spawn()
            .expect("spawn background client");
        Bg { child, out }
    }

    pub fn text(&self) -> String {
        fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// What the client wrote to stderr (for failure messages).
    pub fn errors(&self) -> String {
        fs::read_to_string(self.out.with_extension("err")).unwrap_or_default()
    }

    pub fn wait_for(&self, what: &str) -> bool {
        wait_until(PATIENCE, || self.text().contains(what))
    }

    /// Waits (up to 2 × PATIENCE) for the client to exit, kills it otherwise; its stdout.
    pub fn finish(mut self) -> String {
        let end = Instant::now() + PATIENCE * 2;
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.text()
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a client script to completion in the background (a hang is bounded by 3 × PATIENCE),
/// its stdout in `dir/<label>-<n>.out`; panics, naming `label` and showing stdout and the tail
/// of stderr, when it hung or printed an `error ...` line. Its stdout.
pub fn run_client(cmd: Command, dir: &Path, label: &str) -> String {
    static RUNS: AtomicU32 = AtomicU32::new(0);
    let n = RUNS.fetch_add(1, Ordering::Relaxed);
    let mut bg = Bg::spawn(cmd, dir.join(format!("{label}-{n}.out")));
    let done = wait_until(PATIENCE * 3, || matches!(bg.child.try_wait(), Ok(Some(_))));
    let text = bg.text();
    let e = bg.errors();
    let cut = e.char_indices().rev().nth(3000).map_or(0, |(i, _)| i);
    assert!(
        done && !text.contains("\nerror ") && !text.starts_with("error "),
        "{label} failed or hung:\n{text}\n--- stderr tail ---\n{}",
        &e[cut..]
    );
    text
}

/// The daemon's stdout/stderr followed by its `system/runtime.log`.
pub fn log_text(root: &TestRoot, daemon: &Daemon) -> String {
    let mut s = daemon.output();
    if let Ok(t) = fs::read_to_string(root.log_dir().join("system").join("runtime.log")) {
        s.push_str(&t);
    }
    s
}

/// Subscriptions that let each of `devs` send shadow requests for any thing to
/// GGShadowService and receive every shadow reply.
pub fn shadow_service_subs(devs: &[&Dev]) -> Vec<(String, String, String)> {
    let sh = "GGShadowService".to_string();
    let mut subs = Vec::new();
    for d in devs {
        subs.push((d.thing_arn(), "$aws/things/+/shadow/+".into(), sh.clone()));
        subs.push((sh.clone(), "$aws/things/+/shadow/#".into(), d.thing_arn()));
    }
    subs
}

/// The `reply SUFFIX BODY` lines of tests/py/shadow_device.py as (suffix, body).
pub fn shadow_replies(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("reply "))
        .filter_map(|l| l.split_once(' '))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// A group.json holding `devices` and one subscription per `(Source, Subject, Target)`, with
/// Ids `s0`, `s1`, ... in order.
pub fn group_json_with<S: AsRef<str>>(devices: &[&Dev], subs: &[(S, S, S)]) -> String {
    let devices: Vec<String> = devices.iter().map(|d| d.group_entry()).collect();
    let subs: Vec<String> = subs
        .iter()
        .enumerate()
        .map(|(i, (src, subj, dst))| {
            format!(
                r#"{{"Id":"s{i}","Source":"{}","Subject":"{}","Target":"{}"}}"#,
                src.as_ref(),
                subj.as_ref(),
                dst.as_ref()
            )
        })
        .collect();
    format!(
        r#"{{"DeviceDefinitionVersion":{{"Devices":[{}]}},"SubscriptionDefinitionVersion":{{"Subscriptions":[{}]}}}}"#,
        devices.join(","),
        subs.join(",")
    )
}

/// `base` (a group.json from [`group_json_with`]) with one user function `id` (runs
/// `main.py`, NoContainer), whose code a deployment must provide.
pub fn group_with_function(base: &str, id: &str) -> String {
    let f = format!(
        r#""FunctionDefinitionVersion":{{"Functions":[{{"Id":"{id}","FunctionArn":"arn:aws:lambda:us-east-1:123456789012:function:{id}:1","FunctionConfiguration":{{"Executable":"main.py","Timeout":3,"Environment":{{"Execution":{{"IsolationMode":"NoContainer"}}}}}}}}]}},"#
    );
    base.replacen('{', &format!("{{{f}"), 1)
}

/// A zip made by Python's zipfile: `(name, content)` files; a content starting with `->` makes
/// a symbolic link to the rest.
pub fn make_zip(path: &Path, entries: &[(&str, &str)]) {
    let mut script = String::from(
        "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED)\n",
    );
    for (name, content) in entries {
        match content.strip_prefix("->") {
            Some(target) => script.push_str(&format!(
                "i = zipfile.ZipInfo({name:?}); i.external_attr = 0o120777 << 16\nz.writestr(i, {target:?})\n"
            )),
            None => script.push_str(&format!("z.writestr({name:?}, {content:?})\n")),
        }
    }
    script.push_str("z.close()\n");
    let out = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .arg(path)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed server identity for `localhost` / 127.0.0.1 in `dir`: (key, certificate), the
/// certificate also being the CA the clients trust.
pub fn localhost_server_identity(dir: &Path) -> (PathBuf, PathBuf) {
    let (key, cert) = (dir.join("server.key"), dir.join("server.pem"));
    openssl_self_signed(
        &key,
        &cert,
        "localhost",
        &["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
    );
    (key, cert)
}

/// What the tests that run the broker in their own process (under a counting allocator) set up
/// alike: the group parsed from `group_text`, the broker's TLS configuration from its
/// certificate and key files, and a non-blocking listener on a free loopback port.
pub fn in_process_broker_parts(
    group_text: &str,
    cert: &Path,
    key: &Path,
) -> (
    sprig::config::Group,
    std::sync::Arc<rustls::ServerConfig>,
    u16,
    async_io::Async<TcpListener>,
) {
    let (group, _) =
        sprig::config::Group::parse(group_text.as_bytes(), Path::new("group.json")).expect("group");
    let tls = sprig::broker::tls::server_config(
        sprig::pki::load_cert_chain(cert).unwrap(),
        sprig::pki::load_private_key(key).unwrap(),
    )
    .unwrap();
    let std_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = std_listener.local_addr().unwrap().port();
    (
        group,
        tls,
        port,
        async_io::Async::new(std_listener).unwrap(),
    )
}
