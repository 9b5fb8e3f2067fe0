//! The `log` backend: the Greengrass log layout under `WRITE_DIR/ggc/var/log` (guide §9.4):
//!
//! ```text
//! crash.log                                  startup failures and fatal errors
//! system/runtime.log                         everything not from a named system component
//! system/<Component>.log                     `log::info!(target: "GGCloudSpooler", ..)`
//! user/<region>/<account>/<function>.log     [`user_log`], for Lambda output
//! ```
//!
//! Settings come from the group's LoggerDefinitionVersion (FileSystem entries; default
//! FileSystem/INFO/128 KB, guide §9.5). Each file keeps to its `Space`: it is written up to
//! `Space/2`, then renamed to `<name>.1` (replacing the previous one), so a file and its one
//! rotated sibling never exceed `Space` together. Lines are written straight to the file (no
//! buffer), each at most [`MAX_LOG_LINE_BYTES`]:
//! `[2026-11-26T10:00:00.123Z][INFO]-GGCloudSpooler: message`.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::config::{Logger, LoggerComponent, LoggerType};
use crate::limits::{DEFAULT_LOG_SPACE_KB, MAX_LOG_LINE_BYTES, MAX_OPEN_LOG_FILES};
use crate::sys;

/// Greengrass system components with their own `system/<name>.log`. A `log` target equal to one
/// of these names writes there; every other target goes to `system/runtime.log`.
pub const SYSTEM_COMPONENTS: &[&str] = &[
    "GGCloudSpooler",
    "GGConnManager",
    "GGDeviceCertificateManager",
    "GGIPDetector",
    "GGSecretManager",
    "GGShadowService",
    "GGShadowSyncManager",
    "GGStreamManager",
    "GGTES",
];

/// File logging of one LoggerDefinition component (GreengrassSystem or Lambda).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLogging {
    /// Lines below this level are dropped. `Off` when the group has loggers for the component
    /// but none of Type FileSystem (Greengrass then writes no local files for it).
    pub level: LevelFilter,
    /// Budget per log file (with its rotated sibling), bytes.
    pub space_bytes: u64,
}

impl Default for FileLogging {
    /// Guide §9.5: FileSystem, INFO, 128 KB.
    fn default() -> Self {
        FileLogging {
            level: LevelFilter::Info,
            space_bytes: DEFAULT_LOG_SPACE_KB * 1024,
        }
    }
}

/// Everything the logger needs, derived from the config and the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `WRITE_DIR/ggc/var/log`.
    pub dir: PathBuf,
    pub system: FileLogging,
    pub lambda: FileLogging,
    /// Also write each line to stderr (`--foreground`).
    pub echo_stderr: bool,
    /// The group asked for AWSCloudWatch logging, which sprig does not do yet.
    pub cloudwatch_requested: bool,
}

impl Settings {
    /// Settings for `write_dir` from the group's `LoggerDefinitionVersion.Loggers`.
    pub fn from_group(write_dir: &Path, loggers: &[Logger], echo_stderr: bool) -> Settings {
        let pick = |component: LoggerComponent| {
            let mine: Vec<&Logger> = loggers
                .iter()
                .filter(|l| l.component == component)
                .collect();
            if mine.is_empty() {
                return FileLogging::default();
            }
            match mine.iter().find(|l| l.kind == LoggerType::FileSystem) {
                Some(l) => FileLogging {
                    level: l.level,
                    space_bytes: l.space_kb.saturating_mul(1024),
                },
                None => FileLogging {
                    level: LevelFilter::Off,
                    space_bytes: 0,
                },
            }
        };
        Settings {
            dir: log_dir(write_dir),
            system: pick(LoggerComponent::GreengrassSystem),
            lambda: pick(LoggerComponent::Lambda),
            echo_stderr,
            cloudwatch_requested: loggers.iter().any(|l| l.kind == LoggerType::AwsCloudWatch),
        }
    }
}

/// `WRITE_DIR/ggc/var/log`.
pub fn log_dir(write_dir: &Path) -> PathBuf {
    write_dir.join("ggc").join("var").join("log")
}

/// One open log file and how many bytes it holds.
struct OpenLog {
    file: File,
    size: u64,
}

struct State {
    settings: Settings,
    /// Open files by path; at most [`MAX_OPEN_LOG_FILES`] (all are closed when full).
    files: HashMap<PathBuf, OpenLog>,
    /// The line being formatted; capacity [`MAX_LOG_LINE_BYTES`], reused.
    line: String,
    /// Lines that could not be written (file could not be opened or written).
    dropped: u64,
    /// A write failure was already reported on stderr (once per configuration).
    reported_failure: bool,
    /// `--foreground` echo lines not written because stderr could not take them at once.
    echo_dropped: u64,
}

/// The process-wide logger (`log` needs a `'static`).
struct GgLogger {
    state: Mutex<Option<State>>,
}

static LOGGER: GgLogger = GgLogger {
    state: Mutex::new(None),
};

/// The AWSCloudWatch warning is logged once per process, not on every reload.
static CLOUDWATCH_WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Installs the logger with these settings (first call), or applies new settings (later
/// calls: SIGHUP). Applying closes every file, so files moved away are reopened fresh.
pub fn init(settings: Settings) {
    let max = settings.system.level;
    let cloudwatch = settings.cloudwatch_requested;
    {
        let mut guard = LOGGER.state.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_mut() {
            Some(state) => {
                state.settings = settings;
                state.files.clear();
                state.reported_failure = false;
            }
            None => *guard = Some(State::new(settings)),
        }
    }
    // Fails only when another logger is installed (a test harness); then ours is unused.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(max);
    if cloudwatch && !CLOUDWATCH_WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        log::warn!(
            "LoggerDefinitionVersion asks for AWSCloudWatch logging, which sprig does not support \
             yet; only FileSystem loggers are used"
        );
    }
}

/// Whether lines are echoed to stderr now (`--foreground`); a hot-applied group keeps it.
pub fn echo_stderr() -> bool {
    let guard = LOGGER.state.lock().unwrap_or_else(|p| p.into_inner());
    guard.as_ref().is_some_and(|s| s.settings.echo_stderr)
}

/// Lines dropped because a log file could not be written, since start.
pub fn dropped_lines() -> u64 {
    let guard = LOGGER.state.lock().unwrap_or_else(|p| p.into_inner());
    guard.as_ref().map_or(0, |s| s.dropped)
}

/// Writes one line to `crash.log` (never echoed: callers print startup failures themselves).
/// Used for startup failures and fatal errors; works before [`init`].
pub fn crash(dir: &Path, message: &str) {
    let mut guard = LOGGER.state.lock().unwrap_or_else(|p| p.into_inner());
    // Before init this state only serves crash.log; init replaces its settings.
    let state = guard.get_or_insert_with(|| {
        State::new(Settings {
            dir: dir.to_path_buf(),
            system: FileLogging::default(),
            lambda: FileLogging::default(),
            echo_stderr: false,
            cloudwatch_requested: false,
        })
    });
    let budget = state.settings.system.space_bytes.max(MIN_CRASH_LOG_BYTES);
    let path = dir.join("crash.log");
    state.write(
        path,
        Level::Error,
        "crash",
        budget,
        false,
        format_args!("{message}"),
    );
}

/// crash.log keeps at least this many bytes even when the system Space is tiny or logging is
/// off: it is the file a user reads when the core died.
const MIN_CRASH_LOG_BYTES: u64 = 16 * 1024;

/// Writes one line of a user Lambda's output to `user/<region>/<account>/<function>.log`,
/// under the Lambda logger's level and Space. Path parts are sanitised (no `/`, no `..`).
pub fn user_log(region: &str, account: &str, function: &str, level: Level, args: fmt::Arguments) {
    let mut guard = LOGGER.state.lock().unwrap_or_else(|p| p.into_inner());
    let Some(state) = guard.as_mut() else { return };
    let lambda = state.settings.lambda;
    if level > lambda.level {
        return;
    }
    let path = state
        .settings
        .dir
        .join("user")
        .join(safe_part(region))
        .join(safe_part(account))
        .join(format!("{}.log", safe_part(function)));
    let echo = state.settings.echo_stderr;
    state.write(path, level, function, lambda.space_bytes, echo, args);
}

/// A path component that cannot escape its directory.
fn safe_part(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| {
            if c == '/' || c == '\0' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    match cleaned.as_str() {
        "" | "." | ".." => "_".to_string(),
        _ => cleaned,
    }
}

impl Log for GgLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let Some(state) = guard.as_mut() else { return };
        let system = state.settings.system;
        if record.level() > system.level {
            return;
        }
        let target = record.target();
        let (file, component) = match SYSTEM_COMPONENTS.iter().find(|c| **c == target) {
            Some(c) => (format!("{c}.log"), *c),
            None => (
                "runtime.log".to_string(),
                target.strip_prefix("sprig::").unwrap_or(target),
            ),
        };
        let path = state.settings.dir.join("system").join(file);
        let echo = state.settings.echo_stderr;
        let (level, args) = (record.level(), *record.args());
        state.write(path, level, component, system.space_bytes, echo, args);
    }

    fn flush(&self) {}
}

impl State {
    fn new(settings: Settings) -> State {
        State {
            settings,
            files: HashMap::new(),
            line: String::with_capacity(MAX_LOG_LINE_BYTES),
            dropped: 0,
            reported_failure: false,
            echo_dropped: 0,
        }
    }

    /// Formats one line and appends it to `path`, rotating to stay within `budget` bytes.
    fn write(
        &mut self,
        path: PathBuf,
        level: Level,
        component: &str,
        budget: u64,
        echo: bool,
        args: fmt::Arguments,
    ) {
        self.line.clear();
        let mut w = BoundedLine {
            buf: &mut self.line,
            cap: MAX_LOG_LINE_BYTES - 1,
        };
        let _ = write!(
            w,
            "[{}][{}]-{}: ",
            Timestamp(SystemTime::now()),
            level_name(level),
            component
        );
        let _ = w.write_fmt(args);
        self.line.push('\n');
        if echo && !echo_to_stderr(self.line.as_bytes()) {
            self.echo_dropped += 1;
        }
        // Each of the two files gets half the budget; a line longer than that is cut.
        let half = budget / 2;
        if half == 0 {
            return;
        }
        let len = (self.line.len() as u64).min(half);
        if let Err(e) = self.append(&path, half, len as usize) {
            self.dropped += 1;
            if !self.reported_failure {
                self.reported_failure = true;
                let msg = format!("sprig: cannot write log file {}: {e}\n", path.display());
                echo_to_stderr(msg.as_bytes());
            }
        }
    }

    fn append(&mut self, path: &Path, half: u64, len: usize) -> std::io::Result<()> {
        if !self.files.contains_key(path) {
            if self.files.len() >= MAX_OPEN_LOG_FILES {
                self.files.clear();
            }
            let log = open_log(path, half)?;
            self.files.insert(path.to_path_buf(), log);
        }
        let Some(log) = self.files.get_mut(path) else {
            return Ok(());
        };
        if log.size + len as u64 > half {
            drop(self.files.remove(path));
            fs::rename(path, rotated(path))?;
            let log = open_log(path, half)?;
            self.files.insert(path.to_path_buf(), log);
        }
        let Some(log) = self.files.get_mut(path) else {
            return Ok(());
        };
        let bytes = &self.line.as_bytes()[..len];
        log.file.write_all(bytes)?;
        log.size += bytes.len() as u64;
        Ok(())
    }
}

/// Writes one line to stderr only if it can take it without waiting (see
/// [`sys::write_if_ready`]): a `--foreground` core whose stderr is a pipe nobody reads, or a
/// stopped terminal, drops echo lines instead of stalling the event loop. False when dropped
/// (or cut short).
fn echo_to_stderr(line: &[u8]) -> bool {
    // A pipe takes a write of up to PIPE_BUF (at least 512, 4096 on Linux) whole once poll says
    // it is writable; log lines are at most MAX_LOG_LINE_BYTES.
    let line = &line[..line.len().min(MAX_LOG_LINE_BYTES)];
    matches!(sys::write_if_ready(std::io::stderr().as_fd(), line), Ok(n) if n == line.len())
}

/// `--foreground` echo lines dropped because stderr could not take them, since start.
pub fn echo_dropped_lines() -> u64 {
    let guard = LOGGER.state.lock().unwrap_or_else(|p| p.into_inner());
    guard.as_ref().map_or(0, |s| s.echo_dropped)
}

/// `<path>.1`.
fn rotated(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".1");
    PathBuf::from(s)
}

/// Opens (creating directories 0700 and the file 0600) a log file for appending, first
/// bringing what is on disk within budget: older rotations (`.2`, `.3`, ... from another
/// version or a bigger Space) are removed, and a `.1` or current file bigger than `half` is
/// removed or rotated.
fn open_log(path: &Path, half: u64) -> std::io::Result<OpenLog> {
    if let Some(parent) = path.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let prefix = format!("{name}.");
        for entry in fs::read_dir(parent)?.flatten() {
            let other = entry.file_name().to_string_lossy().into_owned();
            if let Some(suffix) = other.strip_prefix(&prefix) {
                let numbered = suffix.parse::<u32>().is_ok();
                let too_big = entry.metadata().map(|m| m.len() > half).unwrap_or(false);
                if numbered && (suffix != "1" || too_big) {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
    }
    if fs::metadata(path).map(|m| m.len() > half).unwrap_or(false) {
        fs::rename(path, rotated(path))?;
        if fs::metadata(rotated(path))
            .map(|m| m.len() > half)
            .unwrap_or(false)
        {
            fs::remove_file(rotated(path))?;
        }
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    let size = file.metadata()?.len();
    Ok(OpenLog { file, size })
}

/// Greengrass level names (FATAL is ERROR in `log`; TRACE is finer than DEBUG).
fn level_name(level: Level) -> &'static str {
    match level {
        Level::Error => "ERROR",
        Level::Warn => "WARN",
        Level::Info => "INFO",
        Level::Debug => "DEBUG",
        Level::Trace => "TRACE",
    }
}

/// A `fmt::Write` that stops at `cap` bytes (on a char boundary) and turns line breaks and
/// other control characters into spaces, so one record is one bounded line.
struct BoundedLine<'a> {
    buf: &'a mut String,
    cap: usize,
}

impl fmt::Write for BoundedLine<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if self.buf.len() + c.len_utf8() > self.cap {
                return Err(fmt::Error);
            }
            self.buf.push(if c.is_control() { ' ' } else { c });
        }
        Ok(())
    }
}

/// ISO-8601 UTC with milliseconds: `2026-11-26T10:00:00.123Z`, computed by hand.
pub struct Timestamp(pub SystemTime);

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = d.as_secs();
        let (y, m, day) = civil_from_days((secs / 86_400) as i64);
        let rem = secs % 86_400;
        write!(
            f,
            "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
            rem / 3600,
            rem / 60 % 60,
            rem % 60,
            d.subsec_millis()
        )
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ts(secs: u64, millis: u64) -> String {
        Timestamp(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis))
            .to_string()
    }

    #[test]
    fn timestamps_are_iso8601_utc() {
        assert_eq!(ts(0, 0), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 (leap day of a century leap year) 12:34:56.789
        assert_eq!(ts(951_827_696, 789), "2000-02-29T12:34:56.789Z");
        assert_eq!(ts(1_798_279_200, 123), "2026-12-26T10:00:00.123Z");
        // Last second of 2099 and the first of 2100 (not a leap year).
        assert_eq!(ts(4_102_444_799, 999), "2099-12-31T23:59:59.999Z");
        assert_eq!(ts(4_107_542_400, 0), "2100-03-01T00:00:00.000Z");
    }

    #[test]
    fn bounded_line_cuts_and_flattens() {
        let mut s = String::new();
        let mut w = BoundedLine {
            buf: &mut s,
            cap: 8,
        };
        assert!(write!(w, "ab\ncdéfghij").is_err());
        assert_eq!(s, "ab cdéf");
    }

    #[test]
    fn user_log_paths_cannot_escape() {
        assert_eq!(safe_part(".."), "_");
        assert_eq!(safe_part("a/../b"), "a_.._b");
        assert_eq!(safe_part("us-east-1"), "us-east-1");
    }

    #[test]
    fn group_loggers_map_to_settings() {
        let fs = |component, level, space_kb| Logger {
            component,
            kind: LoggerType::FileSystem,
            level,
            space_kb,
        };
        let cw = Logger {
            component: LoggerComponent::Lambda,
            kind: LoggerType::AwsCloudWatch,
            level: LevelFilter::Info,
            space_kb: 0,
        };
        let dir = Path::new("/w");
        let none = Settings::from_group(dir, &[], false);
        assert_eq!(none.system, FileLogging::default());
        assert_eq!(none.lambda, FileLogging::default());
        assert_eq!(none.dir, Path::new("/w/ggc/var/log"));
        let some = Settings::from_group(
            dir,
            &[
                fs(LoggerComponent::GreengrassSystem, LevelFilter::Error, 16),
                cw,
            ],
            false,
        );
        assert_eq!(some.system.level, LevelFilter::Error);
        assert_eq!(some.system.space_bytes, 16 * 1024);
        // Lambda has only a CloudWatch logger: no local files.
        assert_eq!(some.lambda.level, LevelFilter::Off);
        assert!(some.cloudwatch_requested);
    }

    /// The one test that installs the process-wide logger (it is global): component routing,
    /// levels, user logs, crash.log and rotation within Space, on a temp dir.
    #[test]
    fn files_follow_the_greengrass_layout_and_keep_to_space() {
        let dir = std::env::temp_dir().join(format!("sprig-logging-unit-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let space_kb = 2;
        let sys = Logger {
            component: LoggerComponent::GreengrassSystem,
            kind: LoggerType::FileSystem,
            level: LevelFilter::Info,
            space_kb,
        };
        let lambda = Logger {
            component: LoggerComponent::Lambda,
            level: LevelFilter::Warn,
            ..sys
        };
        init(Settings::from_group(&dir, &[sys, lambda], false));
        let logs = log_dir(&dir);
        log::info!(target: "GGCloudSpooler", "spooled {}", 1);
        log::info!(target: "sprig::broker::session", "hello");
        log::debug!("below INFO: dropped");
        user_log(
            "us-east-1",
            "123456789012",
            "fn",
            Level::Warn,
            format_args!("careful"),
        );
        user_log(
            "us-east-1",
            "123456789012",
            "fn",
            Level::Info,
            format_args!("quiet"),
        );
        crash(&logs, "it broke");
        let read = |p: &str| fs::read_to_string(logs.join(p)).unwrap_or_default();
        assert!(read("system/GGCloudSpooler.log").ends_with("][INFO]-GGCloudSpooler: spooled 1\n"));
        let runtime = read("system/runtime.log");
        assert!(
            runtime.ends_with("][INFO]-broker::session: hello\n"),
            "{runtime}"
        );
        assert!(!runtime.contains("dropped"));
        let user = read("user/us-east-1/123456789012/fn.log");
        assert!(
            user.contains("][WARN]-fn: careful") && !user.contains("quiet"),
            "{user}"
        );
        assert!(read("crash.log").contains("][ERROR]-crash: it broke"));

        // 200 lines of ~80 bytes into a 2 KB Space: one rotated file, never more than 2 KB.
        let budget = space_kb * 1024;
        let total = || {
            ["system/runtime.log", "system/runtime.log.1"]
                .iter()
                .map(|p| fs::metadata(logs.join(p)).map(|m| m.len()).unwrap_or(0))
                .sum::<u64>()
        };
        for i in 0..200 {
            log::info!("line {i:04} of the rotation test, padded to about eighty bytes");
            assert!(total() <= budget, "{} > {budget}", total());
        }
        assert!(read("system/runtime.log.1").contains("line 01"));
        assert!(read("system/runtime.log").contains("line 0199"));
        assert!(total() > budget / 2);
        // Older rotations left by someone else are removed when the file is opened again.
        fs::write(logs.join("system/runtime.log.2"), "old").unwrap();
        init(Settings::from_group(&dir, &[sys, lambda], false));
        log::info!("after reload");
        assert!(!logs.join("system/runtime.log.2").exists());
        assert!(total() <= budget);
        assert_eq!(dropped_lines(), 0);
        let _ = fs::remove_dir_all(&dir);
    }
}
