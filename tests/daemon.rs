//! The daemon as a user runs it: the real binary on temp Greengrass roots. Timings are never
//! asserted; every wait polls up to a generous bound.

mod common;

use std::fs;
use std::path::Path;

use common::*;

/// Checks `[2026-11-26T10:00:00.123Z][INFO]-component: message`.
fn assert_line_format(line: &str) {
    let b = line.as_bytes();
    let ts_ok = b.len() > 27
        && b[0] == b'['
        && b[25] == b']'
        && b[1..25].iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'.',
            23 => c == b'Z',
            _ => c.is_ascii_digit(),
        });
    assert!(ts_ok, "bad timestamp in log line {line:?}");
    let rest = &line[26..];
    let level_ok = ["[INFO]-", "[WARN]-", "[ERROR]-", "[DEBUG]-", "[TRACE]-"]
        .iter()
        .any(|l| rest.starts_with(l));
    assert!(level_ok, "bad level in log line {line:?}");
    let after = rest.split_once("]-").map(|(_, r)| r).unwrap_or("");
    let (component, message) = after.split_once(": ").expect("component: message");
    assert!(
        !component.is_empty() && !component.contains(' '),
        "bad component in {line:?}"
    );
    assert!(!message.is_empty(), "empty message in {line:?}");
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

fn runtime_log(root: &TestRoot) -> String {
    read(&root.log_dir().join("system/runtime.log"))
}

/// Waits for the daemon's own startup: the pid file names it and the "started" line is logged.
fn wait_started(root: &TestRoot, d: &mut Daemon) {
    let up = wait_until(PATIENCE, || {
        root.pid_from_file() == Some(d.pid) && runtime_log(root).contains("started (pid")
    });
    if !up {
        panic!(
            "daemon did not start (exit {:?}); output:\n{}",
            d.try_wait(),
            d.output()
        );
    }
}

/// A root with a started foreground daemon.
fn started(label: &str) -> (TestRoot, Daemon) {
    let root = TestRoot::new(label);
    let mut d = root.start();
    wait_started(&root, &mut d);
    (root, d)
}

/// `fs.protected_hardlinks` and `fs.protected_symlinks` are both 1 on this machine.
fn links_protected() -> bool {
    let one = |n: &str| read(Path::new(&format!("/proc/sys/fs/{n}"))).trim() == "1";
    one("protected_hardlinks") && one("protected_symlinks")
}

/// Kills a daemonized sprig (not our child) if a test fails before stopping it.
struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if alive(self.0) {
            signal(self.0, libc::SIGKILL);
        }
    }
}

#[test]
fn version_prints_the_package_version() {
    let (status, out, _) = run_sprig(["--version"]);
    assert!(status.success());
    assert_eq!(out.trim(), format!("sprig {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn usage_errors_exit_2_with_the_usage() {
    for args in [
        &["frobnicate"][..],
        &[],
        &["start", "--bogus"],
        &["start", "-r"],
        &["stop", "-i"],
    ] {
        let (status, _, err) = run_sprig(args);
        assert_eq!(status.code(), Some(2), "sprig {args:?}: {err}");
        assert!(err.contains("usage:"), "sprig {args:?}: {err}");
    }
}

#[test]
fn foreground_daemon_is_one_thread_and_stops_cleanly_on_sigterm() {
    let (root, mut d) = started("fg");
    assert_eq!(
        threads(d.pid),
        Some(1),
        "Threads: in /proc/{}/status",
        d.pid
    );

    let log = runtime_log(&root);
    for line in log.lines() {
        assert_line_format(line);
    }
    assert!(log.contains(&format!("sprig {} starting", env!("CARGO_PKG_VERSION"))));
    assert!(log.contains(&format!("pid {}", d.pid)));
    assert!(log.contains(&root.root().display().to_string()));
    // -i is reported exactly once.
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("running with -i"))
            .count(),
        1
    );
    // --foreground echoes the log lines on stderr.
    assert!(d.output().contains("starting: root"));

    d.signal(libc::SIGTERM);
    let status = d.wait_exit(PATIENCE).expect("daemon exits after SIGTERM");
    assert_eq!(status.code(), Some(0), "output:\n{}", d.output());
    assert!(!root.pid_file().exists(), "pid file removed on clean exit");
    assert!(runtime_log(&root).contains("sprig stopped"));
}

/// --foreground echoes the log on stderr; a stderr pipe that nobody reads must not stall the
/// event loop (the echo drops lines instead): the flood finishes and SIGTERM still stops it.
#[test]
fn an_unread_stderr_pipe_does_not_stall_a_foreground_core() {
    let root = TestRoot::new("stderr-unread");
    let (reader, writer) = std::io::pipe().expect("pipe");
    let mut d = Daemon::spawn_with_stderr(
        &root,
        &["--foreground", "-i"],
        // ~2 MB of echo: far more than a pipe holds.
        &[("SPRIG_LOG_FLOOD", "20000")],
        writer.into(),
    );
    let done = wait_until(PATIENCE * 4, || {
        runtime_log(&root).contains("log flood done") || d.try_wait().is_some()
    });
    assert!(
        done && d.try_wait().is_none(),
        "flood did not finish with stderr unread; exit {:?}",
        d.try_wait()
    );
    d.signal(libc::SIGTERM);
    let status = d.wait_exit(PATIENCE).expect("daemon exits after SIGTERM");
    assert_eq!(status.code(), Some(0));
    assert!(runtime_log(&root).contains("echo lines dropped"));
    drop(reader);
}

#[test]
fn sigint_also_stops_cleanly() {
    let (root, mut d) = started("int");
    d.signal(libc::SIGINT);
    let status = d.wait_exit(PATIENCE).expect("daemon exits after SIGINT");
    assert_eq!(status.code(), Some(0));
    assert!(!root.pid_file().exists());
}

#[test]
fn a_second_start_is_refused_while_one_runs() {
    let (root, d) = started("twice");
    let (status, _, err) = root.sprig("start", &["--foreground", "-i"]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("already running as pid {}", d.pid)),
        "{err}"
    );
    // The running daemon's pid file is untouched.
    assert_eq!(root.pid_from_file(), Some(d.pid));
}

#[test]
fn a_stale_pid_file_does_not_block_start() {
    let root = TestRoot::new("stale");
    // Our own test process is alive but is not sprig.
    fs::write(root.pid_file(), format!("{}\n", std::process::id())).unwrap();
    let mut d = root.start();
    wait_started(&root, &mut d);
}

#[test]
fn daemonized_start_returns_once_up_and_stop_stops_it() {
    let root = TestRoot::new("bg");
    let (status, out, err) = root.sprig("start", &["-i"]);
    assert_eq!(status.code(), Some(0), "stdout: {out}\nstderr: {err}");
    // Exit 0 means up: the pid file is already there (systemd Type=forking reads it now).
    let pid = root
        .pid_from_file()
        .expect("pid file written before the parent exits");
    let _guard = KillOnDrop(pid);
    assert!(alive(pid));
    assert_eq!(threads(pid), Some(1));
    // Not a session leader, and its stdio points at /dev/null.
    let stat = read(Path::new(&format!("/proc/{pid}/stat")));
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    assert_ne!(
        fields[3],
        pid.to_string(),
        "session id (after setsid, fork) is not the pid"
    );
    assert_eq!(
        fs::read_link(format!("/proc/{pid}/fd/2")).unwrap(),
        Path::new("/dev/null")
    );

    let (status, out, err) = root.sprig("stop", &[]);
    assert_eq!(status.code(), Some(0), "stdout: {out}\nstderr: {err}");
    assert!(out.contains(&format!("sprig stopped (pid {pid})")), "{out}");
    assert!(!alive(pid));
    assert!(!root.pid_file().exists());
    assert!(runtime_log(&root).contains("SIGTERM received"));

    // Stopping again is not an error, and says so.
    let (status, out, _) = root.sprig("stop", &[]);
    assert_eq!(status.code(), Some(0));
    assert!(out.contains("not running"), "{out}");
}

#[test]
fn a_daemon_that_fails_after_forking_makes_start_fail() {
    let root = TestRoot::new("bgfail");
    // pidFileDirectory under a regular file: only the daemon, after forking, finds out.
    let blocker = root.dir.path().join("not-a-dir");
    fs::write(&blocker, "").unwrap();
    let config = root.default_config().replace(
        &format!("\"pidFileDirectory\": \"{}\"", root.pid_dir().display()),
        &format!("\"pidFileDirectory\": \"{}/run\"", blocker.display()),
    );
    assert!(config.contains("not-a-dir"));
    root.write_config(&config);
    let (status, _, err) = root.sprig("start", &["-i"]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("cannot write pid file"), "{err}");
    assert!(read(&root.log_dir().join("crash.log")).contains("cannot write pid file"));
}

#[test]
fn link_protection_is_required_without_i() {
    let root = TestRoot::new("links");
    if links_protected() {
        let mut d = Daemon::spawn(&root, &["--foreground"], &[]);
        wait_started(&root, &mut d);
        assert!(!runtime_log(&root).contains("running with -i"));
    } else {
        let (status, _, err) = root.sprig("start", &["--foreground"]);
        assert_eq!(status.code(), Some(1), "{err}");
        assert!(
            err.contains("fs.protected_hardlinks and fs.protected_symlinks must both be 1"),
            "{err}"
        );
        assert!(err.contains("sysctl -w") && err.contains("-i"), "{err}");
        assert!(!root.pid_file().exists());
    }
}

#[test]
fn corrupt_config_makes_start_exit_2_with_the_message() {
    let cases: [&[u8]; 3] = [
        b"{\"coreThing\": {\"thingArn\": ",
        b"\x00\xff\xfe binary \x01\x02",
        b"",
    ];
    for bytes in cases {
        let root = TestRoot::new("corrupt");
        fs::write(root.config_file(), bytes).unwrap();
        // An existing ROOT/ggc/var/log receives the errors in crash.log.
        let root_logs = root.root().join("ggc/var/log");
        fs::create_dir_all(&root_logs).unwrap();
        let (status, _, err) = root.sprig("start", &["--foreground", "-i"]);
        assert_eq!(status.code(), Some(2), "config {bytes:?}: {err}");
        assert!(err.contains("config.json"), "config {bytes:?}: {err}");
        assert!(!root.pid_file().exists());
        let crash = read(&root_logs.join("crash.log"));
        assert!(crash.contains("config.json"), "crash.log: {crash}");
        for line in crash.lines() {
            assert_line_format(line);
        }
    }
}

#[test]
fn missing_config_makes_start_exit_2() {
    let root = TestRoot::empty("noconfig");
    let (status, _, err) = root.sprig("start", &["--foreground", "-i"]);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("config.json"), "{err}");
}

#[test]
fn sighup_reopens_log_files() {
    let (root, mut d) = started("hup");
    let system = root.log_dir().join("system");
    // What logrotate does: move the file away, then SIGHUP.
    fs::rename(system.join("runtime.log"), system.join("moved-away")).unwrap();
    d.signal(libc::SIGHUP);
    assert!(
        wait_until(PATIENCE, || runtime_log(&root)
            .contains("SIGHUP: logging reloaded")),
        "no reload line in a new runtime.log; output:\n{}",
        d.output()
    );
    assert!(!read(&system.join("moved-away")).contains("SIGHUP"));
    assert!(d.try_wait().is_none(), "SIGHUP does not stop the daemon");
}

/// A group whose LoggerDefinitionVersion sets GreengrassSystem's FileSystem logging.
fn logger_group(level: &str, space_kb: u32) -> String {
    format!(
        r#"{{ "LoggerDefinitionVersion": {{ "Loggers": [
            {{ "Id": "sys", "Component": "GreengrassSystem", "Type": "FileSystem",
               "Level": "{level}", "Space": {space_kb} }},
            {{ "Id": "lambda", "Component": "Lambda", "Type": "FileSystem",
               "Level": "INFO", "Space": 128 }} ] }} }}"#
    )
}

#[test]
fn sighup_applies_a_new_logger_definition() {
    let (root, d) = started("hup2");
    root.write_group(&logger_group("DEBUG", 32));
    d.signal(libc::SIGHUP);
    assert!(
        wait_until(PATIENCE, || runtime_log(&root)
            .contains("logging reloaded: GreengrassSystem DEBUG 32 KB")),
        "output:\n{}",
        d.output()
    );
}

/// Floods runtime.log with SPRIG_LOG_FLOOD lines and checks, while it runs and after, that
/// runtime.log and its rotated sibling together stay within `space_kb`.
fn flood_stays_within(root: &TestRoot, space_kb: u32) {
    let mut d = Daemon::spawn(
        root,
        &["--foreground", "-i"],
        &[("SPRIG_LOG_FLOOD", "20000")],
    );
    let system = root.log_dir().join("system");
    let budget = u64::from(space_kb) * 1024;
    let mut samples = 0;
    let done = wait_until(PATIENCE * 4, || {
        let size = files_size(&system, "runtime.log");
        assert!(
            size <= budget,
            "runtime.log* hold {size} bytes, Space is {budget}"
        );
        samples += 1;
        d.output().contains("log flood done") || d.try_wait().is_some()
    });
    assert!(
        done && d.try_wait().is_none(),
        "flood did not finish; exit {:?}, output:\n{}",
        d.try_wait(),
        d.output()
    );
    let size = files_size(&system, "runtime.log");
    assert!(
        size <= budget,
        "runtime.log* hold {size} bytes, Space is {budget}"
    );
    // It rotated (20000 lines are far more than the Space) and kept recent lines.
    assert!(system.join("runtime.log.1").exists());
    assert!(size > budget / 2, "kept {size} bytes");
    assert!(runtime_log(root).contains("log flood done"));
    for line in runtime_log(root).lines() {
        assert_line_format(line);
    }
    assert!(samples > 1);
}

#[test]
fn logs_keep_to_the_default_space_of_128_kb() {
    flood_stays_within(&TestRoot::new("space128"), 128);
}

#[test]
fn logs_keep_to_the_logger_definition_space() {
    let root = TestRoot::new("space16");
    root.write_group(&logger_group("INFO", 16));
    flood_stays_within(&root, 16);
}

#[test]
fn the_logger_definition_level_filters_lines() {
    let root = TestRoot::new("level");
    root.write_group(&logger_group("WARN", 64));
    let mut d = root.start();
    // With -i the daemon logs one WARN line; the INFO startup lines are filtered out.
    assert!(
        wait_until(PATIENCE, || runtime_log(&root).contains("running with -i")),
        "exit {:?}, output:\n{}",
        d.try_wait(),
        d.output()
    );
    assert!(wait_until(PATIENCE, || root.pid_from_file() == Some(d.pid)));
    let log = runtime_log(&root);
    assert!(!log.contains("[INFO]"), "{log}");
}

#[test]
fn a_broken_group_does_not_stop_the_core() {
    let root = TestRoot::new("badgroup");
    root.write_group("{ \"DeviceDefinitionVersion\": [1, 2");
    let mut d = root.start();
    wait_started(&root, &mut d);
    let log = runtime_log(&root);
    assert!(
        log.contains("group.json") && log.contains("using the empty group"),
        "{log}"
    );
    assert!(d.output().contains("[WARN]-daemon: ") && d.output().contains("group.json"));
}

#[test]
fn restart_replaces_a_daemonized_core() {
    let root = TestRoot::new("restart");
    let (status, _, err) = root.sprig("start", &["-i"]);
    assert_eq!(status.code(), Some(0), "{err}");
    let first = root.pid_from_file().expect("pid file");
    let _g1 = KillOnDrop(first);
    let (status, out, err) = root.sprig("restart", &["-i"]);
    assert_eq!(status.code(), Some(0), "stdout: {out}\nstderr: {err}");
    let second = root.pid_from_file().expect("pid file after restart");
    let _g2 = KillOnDrop(second);
    assert_ne!(first, second);
    assert!(!alive(first) && alive(second));
    let (status, _, _) = root.sprig("stop", &[]);
    assert_eq!(status.code(), Some(0));
    assert!(!alive(second));
}
