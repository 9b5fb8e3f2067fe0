//! `sprig start|stop|restart`: the start sequence, daemonizing, the pid file, signals and the
//! one event loop.
//!
//! Start: check the link-protection sysctls (unless `-i`), load config.json and the group,
//! refuse if the pid file names a live sprig; then (without `--foreground`) fork, setsid, fork,
//! so the daemon is not a session leader; then set up logging, signals and the pid file and
//! run [`crate::app::run`] on a `LocalExecutor` inside `async_io::block_on` on the main thread.
//! The daemonizing parent waits on a pipe and exits 0 only once the daemon is up (systemd
//! `Type=forking`), or prints the daemon's startup error and exits non-zero.
//!
//! Signals reach the loop through a self-pipe ([`crate::sys::signal_pipe`]): SIGTERM/SIGINT
//! trigger [`Shutdown`], SIGHUP reloads logging, SIGCHLD reaps children into [`ChildExits`].

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use async_executor::LocalExecutor;
use futures_lite::{future, AsyncReadExt};

use crate::app;
use crate::config::{Config, ConfigError, Group};
use crate::limits::{MAX_QUEUED_CHILD_EXITS, SHUTDOWN_GRACE, STOP_TIMEOUT};
use crate::logging;
use crate::sys::{self, ChildExit, Fork};

/// Name of the pid file in `pidFileDirectory` (as Greengrass names it).
pub const PID_FILE_NAME: &str = "greengrassd.pid";

/// Test hook: when set to N at start, the daemon logs N filler lines to runtime.log on the
/// event loop (yielding between lines) and then `log flood done`. Used only by tests/daemon.rs
/// to exercise log rotation; harmless otherwise.
pub const LOG_FLOOD_ENV: &str = "SPRIG_LOG_FLOOD";

/// How `sprig start` was asked to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartOptions {
    /// The read-only Greengrass root (`-r`, default `/greengrass`).
    pub root: PathBuf,
    /// Stay attached to the terminal and echo log lines to stderr.
    pub foreground: bool,
    /// `-i`: skip the hardlink/symlink protection check.
    pub insecure: bool,
}

/// `sprig start`: returns the process exit code (0 after a clean shutdown, or in the
/// daemonizing parent once the daemon is up; 2 for config errors; 1 otherwise).
pub fn start(opts: StartOptions) -> i32 {
    match prepare(&opts) {
        Ok(ready) if opts.foreground => run_daemon(ready, None),
        Ok(ready) => daemonize(ready),
        Err(code) => code,
    }
}

/// `sprig stop [-r ROOT]`: SIGTERM to the pid in the pid file, then wait until it is gone.
pub fn stop(root: &Path) -> i32 {
    let config = match Config::load(root) {
        Ok((config, _)) => config,
        Err(errors) => {
            print_errors(&errors);
            return 2;
        }
    };
    let pid_file = config.pid_file_directory.join(PID_FILE_NAME);
    let pid = match read_pid_file(&pid_file) {
        Some(pid) => pid,
        None => {
            println!(
                "sprig is not running (no pid file at {})",
                pid_file.display()
            );
            return 0;
        }
    };
    if !is_sprig(pid) {
        let _ = fs::remove_file(&pid_file);
        println!(
            "sprig is not running (pid file {} named pid {pid}, which is not sprig; removed it)",
            pid_file.display()
        );
        return 0;
    }
    if let Err(e) = sys::kill(pid, libc::SIGTERM) {
        eprintln!("sprig: cannot signal pid {pid}: {e}");
        return 1;
    }
    let end = Instant::now() + STOP_TIMEOUT;
    while is_running(pid) {
        if Instant::now() >= end {
            eprintln!(
                "sprig: pid {pid} did not stop within {} s",
                STOP_TIMEOUT.as_secs()
            );
            return 1;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("sprig stopped (pid {pid})");
    0
}

/// Everything loaded before forking, so errors go straight to the user's terminal.
struct Prepared {
    opts: StartOptions,
    config: Config,
    group: Group,
    warnings: Vec<ConfigError>,
    pid_file: PathBuf,
}

/// The checks and loads that need no daemon: sysctls, config, group, an existing daemon.
fn prepare(opts: &StartOptions) -> Result<Prepared, i32> {
    if !opts.insecure {
        if let Err(msg) = check_link_protection() {
            eprintln!("sprig: {msg}");
            return Err(1);
        }
    }
    // The daemon chdirs to /, so every path it keeps must be absolute.
    let root = match std::path::absolute(&opts.root) {
        Ok(root) => root,
        Err(e) => {
            eprintln!("sprig: bad root {}: {e}", opts.root.display());
            return Err(2);
        }
    };
    let (config, mut warnings) = match Config::load(&root) {
        Ok(loaded) => loaded,
        Err(errors) => {
            print_errors(&errors);
            // The write directory is unknown; use the root's log directory only if it exists
            // (the root may be read-only; never create directories in it).
            let dir = logging::log_dir(&root);
            if dir.is_dir() {
                crash_errors(&dir, &errors);
            }
            return Err(2);
        }
    };
    // A deployment killed half-way is finished or removed before the group is read.
    if let Err(e) = crate::deploy::recover_at_start(&config.write_dir) {
        warnings.push(ConfigError {
            file: config.write_dir.join("ggc").join("deployment"),
            key: String::new(),
            message: e,
        });
    }
    // A group that fails validation never stops the core: the last good one (or the empty
    // group) is used and the problems are reported.
    let (group, group_problems) = Group::load_validated(&config);
    warnings.extend(group_problems);
    // A daemon's log is not on the terminal: say it here too. (--foreground echoes the log.)
    if !opts.foreground {
        for w in &warnings {
            eprintln!("sprig: warning: {w}");
        }
    }
    let pid_file = config.pid_file_directory.join(PID_FILE_NAME);
    if let Some(pid) = read_pid_file(&pid_file) {
        if pid != std::process::id() as i32 && is_sprig(pid) {
            eprintln!(
                "sprig: already running as pid {pid} (pid file {}); stop it with `sprig stop -r {}`",
                pid_file.display(),
                root.display()
            );
            return Err(1);
        }
    }
    Ok(Prepared {
        opts: StartOptions {
            root,
            ..opts.clone()
        },
        config,
        group,
        warnings,
        pid_file,
    })
}

fn print_errors(errors: &[ConfigError]) {
    for e in errors {
        eprintln!("sprig: {e}");
    }
}

fn crash_errors(log_dir: &Path, errors: &[ConfigError]) {
    for e in errors {
        logging::crash(log_dir, &format!("cannot start: {e}"));
    }
}

/// Guide: "Hardlink and softlink protection must be enabled on the device. Otherwise, AWS IoT
/// Greengrass can only be run in insecure mode, using the -i flag."
fn check_link_protection() -> Result<(), String> {
    let read = |name: &str| {
        fs::read_to_string(format!("/proc/sys/fs/{name}"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unreadable".to_string())
    };
    let (hard, sym) = (read("protected_hardlinks"), read("protected_symlinks"));
    if hard == "1" && sym == "1" {
        return Ok(());
    }
    Err(format!(
        "refusing to start: fs.protected_hardlinks and fs.protected_symlinks must both be 1 \
         (found protected_hardlinks={hard}, protected_symlinks={sym}). Enable them with \
         `sysctl -w fs.protected_hardlinks=1 fs.protected_symlinks=1` (persist them in \
         /etc/sysctl.conf), or start with -i to run without this protection"
    ))
}

/// Fork, setsid, fork; the first process waits on a pipe for the daemon's verdict.
/// Message on the pipe: one byte exit code (0 = up), then the error text.
fn daemonize(ready: Prepared) -> i32 {
    let (mut reader, writer) = match std::io::pipe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("sprig: cannot create a pipe: {e}");
            return 1;
        }
    };
    match sys::fork() {
        Err(e) => {
            eprintln!("sprig: cannot fork: {e}");
            1
        }
        Ok(Fork::Parent(child)) => {
            drop(writer);
            let _ = sys::wait_pid(child);
            let mut verdict = Vec::new();
            let _ = reader.read_to_end(&mut verdict);
            match verdict.split_first() {
                Some((0, _)) => 0,
                Some((&code, text)) => {
                    eprint!("{}", String::from_utf8_lossy(text));
                    i32::from(code)
                }
                None => {
                    eprintln!("sprig: the daemon exited during startup (see crash.log)");
                    1
                }
            }
        }
        Ok(Fork::Child) => {
            drop(reader);
            if let Err(e) = sys::setsid() {
                report(Some(writer), 1, &format!("sprig: setsid failed: {e}\n"));
                sys::exit_now(1);
            }
            match sys::fork() {
                Err(e) => {
                    report(Some(writer), 1, &format!("sprig: cannot fork: {e}\n"));
                    sys::exit_now(1)
                }
                Ok(Fork::Parent(_)) => sys::exit_now(0),
                Ok(Fork::Child) => {
                    let _ = std::env::set_current_dir("/");
                    sys::umask(0o022);
                    let code = run_daemon(ready, Some(writer));
                    std::process::exit(code)
                }
            }
        }
    }
}

/// Tells the waiting parent the verdict, or prints it when in the foreground.
fn report(notify: Option<std::io::PipeWriter>, code: u8, text: &str) {
    match notify {
        Some(mut w) => {
            let mut msg = vec![code];
            msg.extend_from_slice(text.as_bytes());
            let _ = w.write_all(&msg);
        }
        None => eprint!("{text}"),
    }
}

/// The daemon proper (foreground, or the grandchild of a daemonizing start).
fn run_daemon(ready: Prepared, mut notify: Option<std::io::PipeWriter>) -> i32 {
    let Prepared {
        opts,
        config,
        group,
        warnings,
        pid_file,
    } = ready;
    let log_dir = logging::log_dir(&config.write_dir);
    let fail = |notify: Option<std::io::PipeWriter>, code: u8, msg: String| {
        logging::crash(&log_dir, &msg);
        report(notify, code, &format!("sprig: {msg}\n"));
        i32::from(code)
    };

    let signals =
        match sys::signal_pipe(&[libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGCHLD]) {
            Ok(fd) => fd,
            Err(e) => return fail(notify, 1, format!("cannot install signal handlers: {e}")),
        };
    logging::init(logging::Settings::from_group(
        &config.write_dir,
        &group.loggers,
        opts.foreground,
    ));
    if let Err(e) = write_pid_file(&pid_file) {
        return fail(
            notify,
            1,
            format!("cannot write pid file {}: {e}", pid_file.display()),
        );
    }
    let pid = std::process::id();
    log::info!(
        "sprig {} starting: root {}, write directory {}, pid {pid}{}",
        env!("CARGO_PKG_VERSION"),
        opts.root.display(),
        config.write_dir.display(),
        if opts.foreground { ", foreground" } else { "" }
    );
    for w in &warnings {
        log::warn!("{w}");
    }
    if opts.insecure {
        log::warn!(
            "running with -i: hardlink/symlink protection (fs.protected_hardlinks, \
             fs.protected_symlinks) is not required"
        );
    }

    let shutdown = Shutdown::new();
    let child_exits = ChildExits::new();
    let reload = Rc::new(crate::workq::Notify::default());
    let ex = LocalExecutor::new();
    let core = app::Core {
        config: config.clone(),
        group,
        child_exits: child_exits.clone(),
        reload: reload.clone(),
    };
    let result = async_io::block_on(ex.run(async {
        ex.spawn(signal_loop(
            signals,
            shutdown.clone(),
            child_exits,
            reload,
            config,
            opts.foreground,
        ))
        .detach();
        if let Some(n) = std::env::var_os(LOG_FLOOD_ENV).and_then(|v| v.to_str()?.parse().ok()) {
            ex.spawn(log_flood(n)).detach();
        }
        let mut app = pin!(app::run(core, &ex, shutdown.clone()));
        // The app binds its ports and loads its certificates before its first await; an
        // error there is a startup error the caller of `sprig start` must see.
        match future::poll_once(&mut app).await {
            Some(Err(e)) => return Err((true, e)),
            Some(Ok(())) => return Ok(()),
            None => {}
        }
        if let Some(n) = notify.take() {
            report(Some(n), 0, "");
            // The parent has its answer; the daemon lets go of the terminal.
            let _ = sys::stdio_to_dev_null();
        }
        log::info!("sprig {} started (pid {pid})", env!("CARGO_PKG_VERSION"));
        let grace = async {
            shutdown.wait().await;
            async_io::Timer::after(SHUTDOWN_GRACE).await;
            log::warn!(
                "components did not stop within {} ms of the shutdown request; exiting anyway",
                SHUTDOWN_GRACE.as_millis()
            );
            Ok(())
        };
        future::or(app, grace).await.map_err(|e| (false, e))
    }));
    remove_pid_file(&pid_file);
    match result {
        Ok(()) => {
            let dropped = logging::echo_dropped_lines();
            if dropped > 0 {
                log::warn!("{dropped} echo lines dropped: stderr could not take them at once");
            }
            log::info!("sprig stopped");
            0
        }
        Err((true, e)) => fail(notify, 1, e.to_string()),
        Err((false, e)) => {
            logging::crash(&log_dir, &e.to_string());
            log::error!("{e}");
            1
        }
    }
}

/// Reads the signal self-pipe and acts on each signal until shutdown.
async fn signal_loop(
    fd: OwnedFd,
    shutdown: Shutdown,
    child_exits: ChildExits,
    reload: Rc<crate::workq::Notify>,
    config: Config,
    foreground: bool,
) {
    let mut pipe = match async_io::Async::new(File::from(fd)) {
        Ok(p) => p,
        Err(e) => {
            log::error!("cannot watch the signal pipe: {e}; stopping");
            shutdown.trigger();
            return;
        }
    };
    let mut buf = [0u8; 64];
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(n) => n,
            Err(e) => {
                log::error!("signal pipe failed: {e}; stopping");
                shutdown.trigger();
                return;
            }
        };
        // A burst of the same signal is handled once.
        let (mut term, mut hup, mut chld) = (None, false, false);
        for &b in &buf[..n] {
            match i32::from(b) {
                s @ (libc::SIGTERM | libc::SIGINT) => term = Some(s),
                libc::SIGHUP => hup = true,
                libc::SIGCHLD => chld = true,
                _ => {}
            }
        }
        if chld {
            while let Some((pid, how)) = sys::reap_one() {
                child_exits.push(pid, how);
            }
        }
        if hup {
            reload_logging(&config, foreground);
            // A deployment or reset was installed: apply the group (crate::deploy::apply).
            reload.notify();
        }
        if let Some(s) = term {
            log::info!(
                "{} received; shutting down",
                if s == libc::SIGTERM {
                    "SIGTERM"
                } else {
                    "SIGINT"
                }
            );
            shutdown.trigger();
        }
    }
}

/// SIGHUP: re-read the group's LoggerDefinitionVersion (the last good group when group.json
/// fails validation) and reopen every log file.
fn reload_logging(config: &Config, foreground: bool) {
    let (group, problems) = Group::load_validated(config);
    let settings = logging::Settings::from_group(&config.write_dir, &group.loggers, foreground);
    let (sys_, lambda) = (settings.system, settings.lambda);
    logging::init(settings);
    for p in &problems {
        log::warn!("SIGHUP: {p}");
    }
    log::info!(
        "SIGHUP: logging reloaded: GreengrassSystem {} {} KB, Lambda {} {} KB",
        sys_.level,
        sys_.space_bytes / 1024,
        lambda.level,
        lambda.space_bytes / 1024
    );
}

/// Test hook behind [`LOG_FLOOD_ENV`].
async fn log_flood(lines: u64) {
    for i in 0..lines {
        log::info!("log flood line {i} of {lines}: the quick brown fox jumps over the lazy dog");
        future::yield_now().await;
    }
    log::info!("log flood done ({lines} lines)");
}

/// Writes `<pid>\n`, creating the directory.
fn write_pid_file(path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(path, format!("{}\n", std::process::id()))
}

/// Removes the pid file if it still names this process.
fn remove_pid_file(path: &Path) {
    if read_pid_file(path) == Some(std::process::id() as i32) {
        let _ = fs::remove_file(path);
    }
}

/// The pid of the sprig daemon running for this config (pid file names a live sprig).
pub fn running_pid(config: &Config) -> Option<i32> {
    read_pid_file(&config.pid_file_directory.join(PID_FILE_NAME)).filter(|&p| is_sprig(p))
}

fn read_pid_file(path: &Path) -> Option<i32> {
    fs::read_to_string(path)
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|&p| p > 0)
}

/// True while the process exists and is not a zombie.
fn is_running(pid: i32) -> bool {
    if !sys::process_exists(pid) {
        return false;
    }
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        // No /proc: trust kill(0).
        Err(_) => true,
    }
}

/// True when `pid` is a running sprig (argv[0], or argv[1] behind an interpreter such as
/// qemu, names a `sprig` program), so a stale pid file whose pid was reused by another
/// program does not block a start.
fn is_sprig(pid: i32) -> bool {
    if !is_running(pid) {
        return false;
    }
    match fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => cmdline.split(|&b| b == 0).take(2).any(|arg| {
            let arg = String::from_utf8_lossy(arg);
            let name = arg.rsplit('/').next().unwrap_or("");
            name.starts_with("sprig")
        }),
        Err(_) => true,
    }
}

/// A shutdown request that tasks can check or await. Cheap to clone; single-threaded.
#[derive(Clone, Default)]
pub struct Shutdown {
    inner: Rc<ShutdownInner>,
}

#[derive(Default)]
struct ShutdownInner {
    triggered: Cell<bool>,
    next_id: Cell<u64>,
    /// Wakers of pending [`Shutdown::wait`] futures, removed when a future is dropped, so a
    /// loop that races `wait()` against reads does not grow this.
    waiters: RefCell<Vec<(u64, Waker)>>,
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Requests shutdown and wakes every waiter. Idempotent.
    pub fn trigger(&self) {
        self.inner.triggered.set(true);
        let waiters = std::mem::take(&mut *self.inner.waiters.borrow_mut());
        for (_, w) in waiters {
            w.wake();
        }
    }

    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.get()
    }

    /// Completes once shutdown has been requested.
    pub async fn wait(&self) {
        let id = self.inner.next_id.get();
        self.inner.next_id.set(id + 1);
        let guard = WaitGuard {
            inner: &self.inner,
            id,
        };
        future::poll_fn(|cx| {
            if guard.inner.triggered.get() {
                return Poll::Ready(());
            }
            let mut waiters = guard.inner.waiters.borrow_mut();
            match waiters.iter_mut().find(|(i, _)| *i == id) {
                Some((_, w)) => w.clone_from(cx.waker()),
                None => waiters.push((id, cx.waker().clone())),
            }
            Poll::Pending
        })
        .await
    }
}

/// Removes a dropped waiter's waker.
struct WaitGuard<'a> {
    inner: &'a ShutdownInner,
    id: u64,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        self.inner
            .waiters
            .borrow_mut()
            .retain(|(i, _)| *i != self.id);
    }
}

/// Children reaped on SIGCHLD, for the Lambda runner (the extension point for managing child
/// processes: spawn with `std::process::Command`, never `wait` on the `Child`, and learn of
/// its end here). Bounded to [`MAX_QUEUED_CHILD_EXITS`]; further exits are dropped and counted.
#[derive(Clone, Default)]
pub struct ChildExits {
    inner: Rc<RefCell<ChildExitsInner>>,
}

#[derive(Default)]
struct ChildExitsInner {
    queue: VecDeque<(i32, ChildExit)>,
    dropped: u64,
    waker: Option<Waker>,
}

impl ChildExits {
    pub fn new() -> ChildExits {
        ChildExits::default()
    }

    fn push(&self, pid: i32, how: ChildExit) {
        let mut inner = self.inner.borrow_mut();
        if inner.queue.len() >= MAX_QUEUED_CHILD_EXITS {
            inner.dropped += 1;
        } else {
            inner.queue.push_back((pid, how));
        }
        if let Some(w) = inner.waker.take() {
            w.wake();
        }
    }

    /// The next reaped child, if any.
    pub fn try_next(&self) -> Option<(i32, ChildExit)> {
        self.inner.borrow_mut().queue.pop_front()
    }

    /// Waits for the next reaped child (one consumer).
    pub async fn next(&self) -> (i32, ChildExit) {
        future::poll_fn(|cx| {
            let mut inner = self.inner.borrow_mut();
            match inner.queue.pop_front() {
                Some(exit) => Poll::Ready(exit),
                None => {
                    inner.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Exits dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.inner.borrow().dropped
    }
}

/// `sprig restart`: stop (if running), then start.
pub fn restart(opts: StartOptions) -> i32 {
    match stop(&opts.root) {
        0 => start(opts),
        code => code,
    }
}

/// Arguments of `start`/`restart` as parsed by [`crate::cli`].
pub fn parse_start_args(args: &[OsString]) -> Result<StartOptions, String> {
    let mut opts = StartOptions {
        root: PathBuf::from("/greengrass"),
        foreground: false,
        insecure: false,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.to_str() {
            Some("-r" | "--root") => match it.next() {
                Some(root) => opts.root = PathBuf::from(root),
                None => return Err("-r needs a directory".into()),
            },
            Some("--foreground" | "-f") => opts.foreground = true,
            Some("-i" | "--insecure") => opts.insecure = true,
            _ => return Err(format!("unknown argument '{}'", arg.to_string_lossy())),
        }
    }
    Ok(opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_wakes_waiters_and_forgets_dropped_ones() {
        let s = Shutdown::new();
        future::block_on(async {
            // A wait that is raced and lost leaves no waker behind.
            assert!(future::poll_once(pin!(s.wait())).await.is_none());
            assert!(s.inner.waiters.borrow().is_empty());
            let ex = LocalExecutor::new();
            let t = ex.spawn({
                let s = s.clone();
                async move { s.wait().await }
            });
            ex.try_tick();
            assert_eq!(s.inner.waiters.borrow().len(), 1);
            assert!(!s.is_triggered());
            s.trigger();
            assert!(s.is_triggered());
            ex.run(t).await;
            assert!(s.inner.waiters.borrow().is_empty());
        });
    }

    #[test]
    fn child_exits_are_bounded() {
        let c = ChildExits::new();
        for pid in 0..(MAX_QUEUED_CHILD_EXITS as i32 + 3) {
            c.push(pid, ChildExit::Exited(0));
        }
        assert_eq!(c.dropped(), 3);
        assert_eq!(c.try_next(), Some((0, ChildExit::Exited(0))));
    }

    #[test]
    fn start_args() {
        let a = |v: &[&str]| parse_start_args(&v.iter().map(OsString::from).collect::<Vec<_>>());
        let o = a(&["-r", "/x", "--foreground", "-i"]).unwrap();
        assert_eq!(o.root, PathBuf::from("/x"));
        assert!(o.foreground && o.insecure);
        let d = a(&[]).unwrap();
        assert_eq!(d.root, PathBuf::from("/greengrass"));
        assert!(!d.foreground && !d.insecure);
        assert!(a(&["-r"]).unwrap_err().contains("-r needs"));
        assert!(a(&["--bogus"]).unwrap_err().contains("--bogus"));
    }
}
