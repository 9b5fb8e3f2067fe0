//! Deployment statuses (`Building` → `InProgress` → `Success` | `Failure`, the Greengrass
//! state machine, seed-C §4) kept in `WRITE_DIR/ggc/var/state/deployments/history.json`:
//! newest first, at most [`limits::DEPLOY_HISTORY_MAX`] entries, rewritten atomically (temp
//! file, fsync, rename). A damaged file is set aside (renamed `*.corrupt`) and a new one begun.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::json::{self, Value};
use crate::limits;
use crate::logging::Timestamp;

/// Greengrass `GetDeploymentStatus` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Building,
    InProgress,
    Success,
    Failure,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Building => "Building",
            Status::InProgress => "InProgress",
            Status::Success => "Success",
            Status::Failure => "Failure",
        }
    }

    fn parse(s: &str) -> Option<Status> {
        [
            Status::Building,
            Status::InProgress,
            Status::Success,
            Status::Failure,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }

    /// `Success` and `Failure` are final.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Success | Status::Failure)
    }
}

/// One deployment (or reset) and its latest status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: String,
    /// `NewDeployment` or `ResetDeployment` (the Greengrass deployment types).
    pub kind: String,
    pub status: Status,
    /// Time of the latest status change, ms since the epoch.
    pub time_ms: u64,
    /// Why it failed (or a note on a success), one line.
    pub reason: Option<String>,
}

impl Entry {
    pub fn new(id: &str, kind: &str, status: Status, reason: Option<String>) -> Entry {
        Entry {
            id: id.to_string(),
            kind: kind.to_string(),
            status,
            time_ms: now_ms(),
            reason: reason.map(|r| one_line(&r)),
        }
    }

    /// `<id> <status> <ISO-8601 UTC time> [reason]`.
    pub fn line(&self) -> String {
        let t = Timestamp(UNIX_EPOCH + Duration::from_millis(self.time_ms));
        match &self.reason {
            Some(r) => format!("{} {} {t} {r}", self.id, self.status.as_str()),
            None => format!("{} {} {t}", self.id, self.status.as_str()),
        }
    }

    pub fn to_json(&self) -> Value {
        let t = Timestamp(UNIX_EPOCH + Duration::from_millis(self.time_ms));
        let mut v = vec![
            ("id".to_string(), Value::String(self.id.clone())),
            ("type".to_string(), Value::String(self.kind.clone())),
            (
                "status".to_string(),
                Value::String(self.status.as_str().into()),
            ),
            ("time".to_string(), Value::String(t.to_string())),
            (
                "time_ms".to_string(),
                Value::Int(self.time_ms.min(i64::MAX as u64) as i64),
            ),
        ];
        if let Some(r) = &self.reason {
            v.push(("reason".to_string(), Value::String(r.clone())));
        }
        Value::Object(v)
    }

    fn from_json(v: &Value) -> Option<Entry> {
        Some(Entry {
            id: v.get("id")?.as_str()?.to_string(),
            kind: v
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("NewDeployment")
                .to_string(),
            status: Status::parse(v.get("status")?.as_str()?)?,
            time_ms: u64::try_from(v.get("time_ms")?.as_i64()?).ok()?,
            reason: v.get("reason").and_then(Value::as_str).map(str::to_string),
        })
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Newlines folded, bounded to [`limits::DEPLOY_REASON_MAX_BYTES`] (on a char boundary).
fn one_line(s: &str) -> String {
    let mut out: String = s
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    if out.len() > limits::DEPLOY_REASON_MAX_BYTES {
        let mut cut = limits::DEPLOY_REASON_MAX_BYTES - 3;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("...");
    }
    out
}

/// `WRITE_DIR/ggc/var/state/deployments`.
pub fn dir(write_dir: &Path) -> PathBuf {
    write_dir
        .join("ggc")
        .join("var")
        .join("state")
        .join("deployments")
}

fn path(write_dir: &Path) -> PathBuf {
    dir(write_dir).join("history.json")
}

/// The history, newest first. Missing → empty. Damaged → renamed `history.json.corrupt`, a
/// warning logged (and returned), empty.
pub fn load(write_dir: &Path) -> (Vec<Entry>, Option<String>) {
    let p = path(write_dir);
    let max = limits::DEPLOY_HISTORY_MAX * (limits::DEPLOY_REASON_MAX_BYTES + 512) + 64;
    let bytes = match super::read_capped(&p, max as u64) {
        Ok(Some(b)) => b,
        Ok(None) => return (Vec::new(), None),
        Err(e) => return (Vec::new(), Some(set_aside(&p, &e))),
    };
    let parsed = json::parse(&bytes, max, 4).map_err(|e| e.to_string());
    let entries = parsed.and_then(|v| {
        v.get("deployments")
            .and_then(Value::as_array)
            .ok_or_else(|| "no \"deployments\" array".to_string())?
            .iter()
            .map(|e| Entry::from_json(e).ok_or_else(|| "an entry lacks id/status/time".into()))
            .collect::<Result<Vec<_>, String>>()
    });
    match entries {
        Ok(mut e) => {
            e.truncate(limits::DEPLOY_HISTORY_MAX);
            (e, None)
        }
        Err(why) => (Vec::new(), Some(set_aside(&p, &why))),
    }
}

fn set_aside(p: &Path, why: &str) -> String {
    let mut to = p.as_os_str().to_owned();
    to.push(".corrupt");
    let _ = std::fs::rename(p, &to);
    let msg = format!(
        "{}: unreadable ({why}); set aside as {} and a new history begun",
        p.display(),
        Path::new(&to).display()
    );
    log::warn!("{msg}");
    msg
}

/// Records `entry`: replaces the entry with the same id (moving it to the front) or adds it
/// in front; the oldest beyond [`limits::DEPLOY_HISTORY_MAX`] are dropped.
pub fn record(write_dir: &Path, entry: Entry) -> std::io::Result<()> {
    let (mut all, _) = load(write_dir);
    all.retain(|e| e.id != entry.id);
    all.insert(0, entry);
    all.truncate(limits::DEPLOY_HISTORY_MAX);
    save(write_dir, &all)
}

/// Every entry that is not final gets `Failure` with `reason`; returns how many.
pub fn fail_unfinished(write_dir: &Path, except: Option<&str>, reason: &str) -> usize {
    let (mut all, _) = load(write_dir);
    let mut n = 0;
    for e in all.iter_mut() {
        if !e.status.is_final() && Some(e.id.as_str()) != except {
            *e = Entry::new(&e.id, &e.kind.clone(), Status::Failure, Some(reason.into()));
            n += 1;
        }
    }
    if n > 0 {
        if let Err(e) = save(write_dir, &all) {
            log::warn!("cannot update the deployment history: {e}");
        }
    }
    n
}

fn save(write_dir: &Path, all: &[Entry]) -> std::io::Result<()> {
    let v = Value::Object(vec![(
        "deployments".to_string(),
        Value::Array(all.iter().map(Entry::to_json).collect()),
    )]);
    super::write_durably(&path(write_dir), json::to_string(&v).as_bytes())
}

/// The newest entry, if any.
pub fn latest(write_dir: &Path) -> Option<Entry> {
    load(write_dir).0.into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(label: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sprig-hist-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn bounded_newest_first_and_updates_in_place() {
        let w = tmp("bounded");
        for i in 0..limits::DEPLOY_HISTORY_MAX + 5 {
            record(
                &w,
                Entry::new(&format!("d{i}"), "NewDeployment", Status::Success, None),
            )
            .unwrap();
        }
        let (all, warn) = load(&w);
        assert!(warn.is_none());
        assert_eq!(all.len(), limits::DEPLOY_HISTORY_MAX);
        assert_eq!(all[0].id, format!("d{}", limits::DEPLOY_HISTORY_MAX + 4));
        record(&w, Entry::new("x", "NewDeployment", Status::Building, None)).unwrap();
        record(
            &w,
            Entry::new("x", "NewDeployment", Status::Failure, Some("a\nb".into())),
        )
        .unwrap();
        let l = latest(&w).unwrap();
        assert_eq!(
            (l.status, l.reason.as_deref()),
            (Status::Failure, Some("a; b"))
        );
        assert!(l.line().starts_with("x Failure 20"), "{}", l.line());
        assert!(l.line().ends_with("Z a; b"), "{}", l.line());
        assert_eq!(load(&w).0.iter().filter(|e| e.id == "x").count(), 1);
        let _ = std::fs::remove_dir_all(&w);
    }

    #[test]
    fn a_damaged_history_is_set_aside() {
        let w = tmp("damaged");
        std::fs::create_dir_all(dir(&w)).unwrap();
        std::fs::write(path(&w), b"{\"deployments\": [").unwrap();
        let (all, warn) = load(&w);
        assert!(all.is_empty());
        assert!(warn.unwrap().contains("set aside"));
        assert!(dir(&w).join("history.json.corrupt").exists());
        record(&w, Entry::new("y", "NewDeployment", Status::Building, None)).unwrap();
        assert_eq!(fail_unfinished(&w, None, "interrupted"), 1);
        assert_eq!(latest(&w).unwrap().status, Status::Failure);
        let _ = std::fs::remove_dir_all(&w);
    }
}
