//! The deployment transaction on disk: stage beside the live group, commit with one atomic
//! rename of a journal, then roll forward; leftovers of a process killed at any point are
//! finished (journal present) or removed (no journal) by [`recover`].
//!
//! Layout under `WRITE_DIR/ggc/deployment/` (live: `group/group.json`, `lambda/<Id>/`):
//!
//! * `.lock`: `flock`ed by whoever changes the deployment (`sprig deploy`, `sprig reset`, the
//!   daemon recovering); released by the kernel when that process dies.
//! * `.staging/group.json`, `.staging/lambda/<Id>/`: the new group and code, complete and
//!   fsynced before the commit.
//! * `.commit.json`: the journal `{"id", "group", "install": [Ids], "remove": [Ids]}`, written
//!   to `.commit.json.tmp`, fsynced and renamed: **the commit point**. Before it the old
//!   deployment is in force, after it the new one (a crash is completed by [`recover`]).
//! * `.trash/`: replaced code directories until the roll-forward ends.
//!
//! Every roll-forward step is a rename that checks first whether it already happened, so it
//! can be repeated after a crash at any point.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::history::{self, Entry, Status};
use crate::json::{self, Value};
use crate::sys;

/// The deployment directory and its parts.
#[derive(Debug, Clone)]
pub struct Layout {
    pub write_dir: PathBuf,
    pub deployment: PathBuf,
}

impl Layout {
    pub fn new(write_dir: &Path) -> Layout {
        Layout {
            write_dir: write_dir.to_path_buf(),
            deployment: write_dir.join("ggc").join("deployment"),
        }
    }
    pub fn lambda_root(&self) -> PathBuf {
        self.deployment.join("lambda")
    }
    /// Where a function's code lives (the Lambda runner reads it from here).
    pub fn lambda_dir(&self, id: &str) -> PathBuf {
        self.lambda_root().join(id)
    }
    pub fn group_file(&self) -> PathBuf {
        crate::config::group_path(&self.write_dir)
    }
    pub fn staging(&self) -> PathBuf {
        self.deployment.join(".staging")
    }
    pub fn staged_lambda(&self, id: &str) -> PathBuf {
        self.staging().join("lambda").join(id)
    }
    fn staged_group(&self) -> PathBuf {
        self.staging().join("group.json")
    }
    fn journal(&self) -> PathBuf {
        self.deployment.join(".commit.json")
    }
    fn trash(&self) -> PathBuf {
        self.deployment.join(".trash")
    }
    /// Function Ids with an installed code directory.
    pub fn installed(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.lambda_root())
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        v.sort();
        v
    }
    /// True while a committed deployment is not fully rolled forward, or staging is left.
    pub fn has_leftovers(&self) -> bool {
        self.journal().exists() || self.staging().exists() || self.trash().exists()
    }
}

/// The exclusive right to change the deployment; released on drop (or when the process dies).
pub struct Lock {
    _file: File,
}

/// Takes the deployment lock without waiting; `Ok(None)` when another process holds it.
pub fn try_lock(layout: &Layout) -> io::Result<Option<Lock>> {
    fs::create_dir_all(&layout.deployment)?;
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(layout.deployment.join(".lock"))?;
    Ok(sys::try_lock_exclusive(&file)?.then_some(Lock { _file: file }))
}

/// Takes the lock, retrying every 50 ms for at most `max` (only outside the event loop).
pub fn lock_waiting(layout: &Layout, max: Duration) -> io::Result<Option<Lock>> {
    let end = Instant::now() + max;
    loop {
        if let Some(l) = try_lock(layout)? {
            return Ok(Some(l));
        }
        if Instant::now() >= end {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What a committed deployment changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub id: String,
    /// A new group.json is staged.
    pub group: bool,
    /// Code directories staged to replace (or create) `lambda/<Id>`.
    pub install: Vec<String>,
    /// Code directories to remove (functions no longer in the group).
    pub remove: Vec<String>,
}

impl Plan {
    fn to_json(&self) -> Value {
        let list = |v: &[String]| Value::Array(v.iter().cloned().map(Value::String).collect());
        Value::Object(vec![
            ("id".into(), Value::String(self.id.clone())),
            ("group".into(), Value::Bool(self.group)),
            ("install".into(), list(&self.install)),
            ("remove".into(), list(&self.remove)),
        ])
    }

    fn from_json(v: &Value) -> Option<Plan> {
        let list = |k: &str| -> Option<Vec<String>> {
            v.get(k)?
                .as_array()?
                .iter()
                .map(|x| {
                    x.as_str()
                        .filter(|s| super::safe_id(s).is_ok())
                        .map(String::from)
                })
                .collect()
        };
        Some(Plan {
            id: v.get("id")?.as_str()?.to_string(),
            group: v.get("group")?.as_bool()?,
            install: list("install")?,
            remove: list("remove")?,
        })
    }
}

/// Removes any staging left and creates an empty one (`.staging/lambda/`). Needs the lock.
pub fn begin(layout: &Layout, _lock: &Lock) -> io::Result<()> {
    remove_tree(&layout.staging())?;
    fs::create_dir_all(layout.staging().join("lambda"))
}

/// Writes the staged group.json (fsynced).
pub fn stage_group(layout: &Layout, _lock: &Lock, bytes: &[u8]) -> io::Result<()> {
    super::write_file_synced(&layout.staged_group(), bytes)
}

/// The commit point: the journal is renamed into place and the directory fsynced. Then rolls
/// forward. Needs the lock; everything in `plan` must be staged.
pub fn commit(layout: &Layout, lock: &Lock, plan: &Plan) -> io::Result<()> {
    super::sync_dir(&layout.staging().join("lambda"))?;
    super::sync_dir(&layout.staging())?;
    super::write_durably(
        &layout.journal(),
        json::to_string(&plan.to_json()).as_bytes(),
    )?;
    roll_forward(layout, lock, plan)
}

/// Applies a committed plan; every step may already have happened.
fn roll_forward(layout: &Layout, _lock: &Lock, plan: &Plan) -> io::Result<()> {
    let trash = layout.trash();
    fs::create_dir_all(&trash)?;
    fs::create_dir_all(layout.lambda_root())?;
    for id in &plan.install {
        let (staged, live, old) = (
            layout.staged_lambda(id),
            layout.lambda_dir(id),
            trash.join(id),
        );
        if !exists(&staged) {
            continue; // moved in already
        }
        if exists(&live) {
            remove_tree(&old)?;
            fs::rename(&live, &old)?;
        }
        super::test_pause();
        fs::rename(&staged, &live)?;
        super::test_pause();
    }
    for id in &plan.remove {
        let live = layout.lambda_dir(id);
        if exists(&live) {
            remove_tree(&trash.join(id))?;
            fs::rename(&live, trash.join(id))?;
        }
    }
    super::sync_dir(&layout.lambda_root())?;
    if plan.group && exists(&layout.staged_group()) {
        let live = layout.group_file();
        if let Some(dir) = live.parent() {
            fs::create_dir_all(dir)?;
        }
        fs::rename(layout.staged_group(), &live)?;
        if let Some(dir) = live.parent() {
            super::sync_dir(dir)?;
        }
    }
    super::test_pause();
    fs::remove_file(layout.journal())?;
    super::sync_dir(&layout.deployment)?;
    remove_tree(&trash)?;
    remove_tree(&layout.staging())
}

/// What [`recover`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Recovered {
    Nothing,
    /// A committed deployment was completed.
    RolledForward(String),
    /// An uncommitted one was removed; the previous deployment stays in force.
    RolledBack,
}

/// Finishes or removes what a killed deployment left. Needs the lock.
pub fn recover(layout: &Layout, lock: &Lock) -> io::Result<Recovered> {
    let journal = layout.journal();
    let _ = fs::remove_file(journal.with_extension("json.tmp"));
    let plan = match super::read_capped(&journal, 1 << 20) {
        Ok(Some(bytes)) => match json::parse(&bytes, 1 << 20, 4)
            .ok()
            .as_ref()
            .and_then(Plan::from_json)
        {
            Some(p) => Some(p),
            None => {
                let aside = journal.with_extension("json.corrupt");
                fs::rename(&journal, &aside)?;
                log::error!(
                    "deployment journal {} is damaged; set aside as {}; the staged deployment is removed",
                    journal.display(),
                    aside.display()
                );
                None
            }
        },
        Ok(None) => None,
        Err(e) => return Err(io::Error::other(e)),
    };
    if let Some(plan) = plan {
        roll_forward(layout, lock, &plan)?;
        let _ = history::record(
            &layout.write_dir,
            Entry::new(
                &plan.id,
                "NewDeployment",
                Status::Success,
                Some("completed after the deploying process was interrupted".into()),
            ),
        );
        return Ok(Recovered::RolledForward(plan.id));
    }
    let had = exists(&layout.staging()) || exists(&layout.trash());
    remove_tree(&layout.staging())?;
    remove_tree(&layout.trash())?;
    let failed = history::fail_unfinished(
        &layout.write_dir,
        None,
        "interrupted before it was committed; the previous group stays in force",
    );
    Ok(if had || failed > 0 {
        Recovered::RolledBack
    } else {
        Recovered::Nothing
    })
}

/// Removes staging after a refused or failed deployment (before the commit).
pub fn abort(layout: &Layout, _lock: &Lock) {
    let _ = remove_tree(&layout.staging());
}

fn exists(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok()
}

/// `remove_dir_all` that accepts a missing path (and removes a plain file too).
pub fn remove_tree(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(label: &str) -> Layout {
        let d = std::env::temp_dir().join(format!("sprig-txn-{label}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        Layout::new(&d)
    }

    fn stage(l: &Layout, lock: &Lock, id: &str, file: &str, group: &str) -> Plan {
        begin(l, lock).unwrap();
        stage_group(l, lock, group.as_bytes()).unwrap();
        fs::create_dir_all(l.staged_lambda(id)).unwrap();
        fs::write(l.staged_lambda(id).join(file), file).unwrap();
        Plan {
            id: "d".into(),
            group: true,
            install: vec![id.into()],
            remove: vec![],
        }
    }

    #[test]
    fn commit_replaces_code_exactly_and_recovery_is_idempotent() {
        let l = tmp("commit");
        let lock = try_lock(&l).unwrap().unwrap();
        assert!(try_lock(&l).unwrap().is_none(), "the lock is exclusive");
        let p = stage(&l, &lock, "f1", "old.py", "{\"v\":1}");
        commit(&l, &lock, &p).unwrap();
        let p = stage(&l, &lock, "f1", "new.py", "{\"v\":2}");
        commit(&l, &lock, &p).unwrap();
        let files: Vec<_> = fs::read_dir(l.lambda_dir("f1"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(files, vec![std::ffi::OsString::from("new.py")]);
        assert_eq!(fs::read_to_string(l.group_file()).unwrap(), "{\"v\":2}");
        assert!(!l.has_leftovers());
        // A journal whose steps all happened already: recovery finishes without error.
        fs::create_dir_all(&l.deployment).unwrap();
        super::super::write_durably(&l.journal(), json::to_string(&p.to_json()).as_bytes())
            .unwrap();
        assert_eq!(
            recover(&l, &lock).unwrap(),
            Recovered::RolledForward("d".into())
        );
        assert!(!l.has_leftovers());
        assert_eq!(fs::read_to_string(l.group_file()).unwrap(), "{\"v\":2}");
        // Staging without a journal is rolled back.
        let _ = stage(&l, &lock, "f1", "newer.py", "{\"v\":3}");
        assert_eq!(recover(&l, &lock).unwrap(), Recovered::RolledBack);
        assert!(l.lambda_dir("f1").join("new.py").exists());
        assert_eq!(fs::read_to_string(l.group_file()).unwrap(), "{\"v\":2}");
        let _ = fs::remove_dir_all(&l.write_dir);
    }

    #[test]
    fn a_crash_between_the_two_renames_of_a_code_dir_completes() {
        let l = tmp("halfway");
        let lock = try_lock(&l).unwrap().unwrap();
        let p = stage(&l, &lock, "f1", "a", "{}");
        commit(&l, &lock, &p).unwrap();
        let p = stage(&l, &lock, "f1", "b", "{\"v\":2}");
        super::super::write_durably(&l.journal(), json::to_string(&p.to_json()).as_bytes())
            .unwrap();
        // The live directory was moved to the trash, then the process died.
        fs::create_dir_all(l.trash()).unwrap();
        fs::rename(l.lambda_dir("f1"), l.trash().join("f1")).unwrap();
        assert_eq!(
            recover(&l, &lock).unwrap(),
            Recovered::RolledForward("d".into())
        );
        assert!(l.lambda_dir("f1").join("b").exists());
        assert!(!l.lambda_dir("f1").join("a").exists());
        assert_eq!(fs::read_to_string(l.group_file()).unwrap(), "{\"v\":2}");
        let _ = fs::remove_dir_all(&l.write_dir);
    }
}
