//! `sprig status`: what the running daemon reports about itself.
//!
//! The daemon keeps `WRITE_DIR/ggc/var/state/status.json` current: rewritten atomically (temp
//! file + rename) at most every [`limits::STATUS_INTERVAL_MS`] when its content changed, removed
//! on clean shutdown. Its size is bounded (at most `maxConnections` device names plus fixed
//! counters). `sprig status` reads it, checks that the pid it names is alive, and prints it.
//!
//! Other areas add a top-level section with [`StatusBoard::add_section`] (the cloud link adds
//! `cloud`: connection state and spool depth); `sprig status` prints any section it finds.

use std::cell::RefCell;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::broker::Hub;
use crate::json::{self, Value};
use crate::limits;

/// Path of the status file under the write directory.
pub fn status_path(write_dir: &Path) -> PathBuf {
    write_dir
        .join("ggc")
        .join("var")
        .join("state")
        .join("status.json")
}

/// A producer of one top-level section of the status file.
pub type Section = Box<dyn Fn() -> Value>;

/// The daemon's side: assembles the report and keeps the file current.
pub struct StatusBoard {
    path: PathBuf,
    hub: Rc<Hub>,
    started: u64,
    sections: RefCell<Vec<(&'static str, Section)>>,
}

fn int(n: impl TryInto<i64>) -> Value {
    Value::Int(n.try_into().unwrap_or(i64::MAX))
}

fn obj(fields: Vec<(&str, Value)>) -> Value {
    Value::Object(
        fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

/// Seconds since the epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl StatusBoard {
    pub fn new(write_dir: &Path, hub: Rc<Hub>) -> StatusBoard {
        StatusBoard {
            path: status_path(write_dir),
            hub,
            started: unix_now(),
            sections: RefCell::new(Vec::new()),
        }
    }

    /// Adds a top-level section (e.g. `cloud`), rendered on every refresh.
    pub fn add_section(&self, name: &'static str, section: Section) {
        self.sections.borrow_mut().push((name, section));
    }

    /// The report as a JSON value.
    pub fn report(&self) -> Value {
        let h = &self.hub;
        let s = &h.stats;
        let (depth, capacity, q) = h.queue.snapshot();
        let devices = h
            .connected_devices()
            .into_iter()
            .map(Value::String)
            .collect();
        let mut fields = vec![
            ("pid", int(std::process::id())),
            ("version", Value::String(env!("CARGO_PKG_VERSION").into())),
            ("started", int(self.started)),
            (
                "connections",
                obj(vec![
                    ("open", int(s.connections.get())),
                    ("limit", int(h.max_connections)),
                    ("accepted", int(s.accepted_total.get())),
                ]),
            ),
            ("devices", Value::Array(devices)),
            (
                "work_queue",
                obj(vec![
                    ("depth", int(depth)),
                    ("capacity", int(capacity)),
                    ("high_water", int(q.high_water)),
                    ("accepted", int(q.accepted)),
                    ("delivered_to_devices", int(s.delivered.get())),
                ]),
            ),
            (
                "drops",
                obj(vec![
                    ("queue_full", int(q.dropped_full)),
                    (
                        "oversize",
                        int(q.dropped_oversize + s.dropped_oversize.get()),
                    ),
                    ("slow_subscriber", int(s.dropped_slow_subscriber.get())),
                    ("no_route", int(s.dropped_no_route.get())),
                    (
                        "lambda_or_connector_not_built",
                        int(s.dropped_no_local_target.get()),
                    ),
                    ("cloud", int(s.dropped_cloud.get())),
                ]),
            ),
            (
                "refused",
                obj(vec![
                    ("auth", int(s.refused_auth.get())),
                    ("connection_limit", int(s.refused_connection_limit.get())),
                    ("handshake", int(s.refused_handshake.get())),
                    ("malformed", int(s.closed_malformed.get())),
                    ("keep_alive", int(s.closed_keep_alive.get())),
                ]),
            ),
        ];
        for (name, section) in self.sections.borrow().iter() {
            fields.push((name, section()));
        }
        obj(fields)
    }

    /// Rewrites the file every interval while its content changes. Runs until dropped.
    pub async fn run(&self) {
        let mut last = String::new();
        loop {
            let text = json::to_string(&self.report());
            if text != last {
                if let Err(e) = replace_file(&self.path, text.as_bytes()) {
                    log::warn!("cannot write the status file {}: {e}", self.path.display());
                }
                last = text;
            }
            async_io::Timer::after(Duration::from_millis(limits::STATUS_INTERVAL_MS)).await;
        }
    }

    /// Removes the file (clean shutdown): `sprig status` then says the core is not running.
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Replaces `path` through a temporary file and a rename, so a reader never sees half a file.
/// No fsync: this runs on the event loop every second while counters move, and an fsync there
/// can stall every device for as long as the disk likes (and wears flash); after a crash the
/// file is stale anyway (`sprig status` checks the pid).
fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Runs `sprig status [-r ROOT] [--json]`; returns the exit code (0 running, 1 not running,
/// 2 usage or unreadable config).
pub fn run(args: &[OsString]) -> i32 {
    let mut root = PathBuf::from("/greengrass");
    let mut raw = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("-r") | Some("--root") => match it.next() {
                Some(r) => root = PathBuf::from(r),
                None => {
                    eprintln!("sprig status: -r needs a directory");
                    return 2;
                }
            },
            Some("--json") => raw = true,
            _ => {
                eprintln!("usage: sprig status [-r ROOT] [--json]");
                return 2;
            }
        }
    }
    let write_dir = match crate::config::Config::load(&root) {
        Ok((c, _)) => c.write_dir,
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            return 2;
        }
    };
    let path = status_path(&write_dir);
    // The latest deployment, in `sprig deploy --status` words (also when not running).
    let deployment = || {
        if let (false, Some(line)) = (raw, crate::deploy::latest_line(&write_dir)) {
            println!("last deployment: {line}");
        }
    };
    let not_running = |why: &str| {
        println!("sprig is not running ({why})");
        deployment();
        1
    };
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(_) => return not_running(&format!("no status file at {}", path.display())),
    };
    let v = match json::parse(&bytes, 1 << 20, 8) {
        Ok(v) => v,
        Err(e) => return not_running(&format!("{}: {e}", path.display())),
    };
    let pid = v.get("pid").and_then(Value::as_i64).unwrap_or(0);
    // SAFETY-free liveness check: /proc/PID exists (Linux, which is all sprig runs on).
    if pid <= 0 || !Path::new(&format!("/proc/{pid}")).exists() {
        return not_running(&format!("pid {pid} from {} is gone", path.display()));
    }
    if raw {
        println!("{}", String::from_utf8_lossy(&bytes));
    } else {
        print!("{}", render(&v));
        deployment();
    }
    0
}

/// Human-readable lines: one per top-level key; objects as `key value` pairs on that line.
pub fn render(v: &Value) -> String {
    let mut out = String::new();
    let Some(fields) = v.as_object() else {
        return json::to_string(v) + "\n";
    };
    for (k, val) in fields {
        let line = match val {
            Value::Object(inner) => pairs(inner),
            Value::Array(items) if items.is_empty() => "(none)".to_string(),
            // A list of records (e.g. `functions`): one indented line each.
            Value::Array(items) if items.iter().all(|i| i.as_object().is_some()) => items
                .iter()
                .filter_map(Value::as_object)
                .map(|o| format!("\n  {}", pairs(o)))
                .collect(),
            Value::Array(items) => items.iter().map(scalar).collect::<Vec<_>>().join(", "),
            other => scalar(other),
        };
        let sep = if line.starts_with('\n') { ":" } else { ": " };
        out.push_str(&format!("{k}{sep}{line}\n"));
    }
    out
}

fn pairs(inner: &[(String, Value)]) -> String {
    inner
        .iter()
        .map(|(ik, iv)| format!("{ik} {}", scalar(iv)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => json::to_string(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_prints_every_section() {
        let v = obj(vec![
            ("pid", int(7)),
            (
                "devices",
                Value::Array(vec![Value::String("A".into()), Value::String("B".into())]),
            ),
            (
                "drops",
                obj(vec![("queue_full", int(3)), ("oversize", int(0))]),
            ),
            (
                "cloud",
                obj(vec![("state", Value::String("offline".into()))]),
            ),
            ("empty", Value::Array(vec![])),
            (
                "functions",
                Value::Array(vec![obj(vec![
                    ("arn", Value::String("f".into())),
                    ("workers", int(1)),
                ])]),
            ),
        ]);
        assert_eq!(
            render(&v),
            "pid: 7\ndevices: A, B\ndrops: queue_full 3, oversize 0\ncloud: state offline\nempty: (none)\nfunctions:\n  arn f, workers 1\n"
        );
    }
}
