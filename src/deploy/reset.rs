//! `sprig reset [--force] [-r ROOT]`: the guide's ResetDeployments on the core (seed-C §5):
//! the deployed group (and its last-good copy, so a restart does not bring it back), function
//! code (`ggc/deployment/lambda`, `mlmodel`), user logs (`ggc/var/log/user`), the local shadow
//! database (`ggc/var/state/shadows`) and the local server certificate (`ggc/var/state/server`)
//! are removed; config.json, `certs/` and the cloud spool are kept. `--force` also removes the
//! cloud spool (`ggc/var/state/spool`), and is refused while the core runs (it holds the
//! spool open). A running core is told (SIGHUP) and goes on with the empty group.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::history::{self, Entry, Status};
use super::txn::{self, Layout};
use crate::config::Config;

const USAGE: &str = "usage: sprig reset [--force] [-r ROOT]";

/// What reset removes, in this order (the group first: from then on the empty group is in
/// force, and a reset killed half-way is simply run again).
pub fn removed_paths(write_dir: &Path, force: bool) -> Vec<PathBuf> {
    let gg = write_dir.join("ggc");
    let state = gg.join("var").join("state");
    let mut v = vec![
        gg.join("deployment").join("group"),
        crate::config::group::last_good_path(write_dir),
        gg.join("deployment").join("lambda"),
        gg.join("deployment").join("mlmodel"),
        gg.join("var").join("log").join("user"),
        crate::shadow::store::shadow_dir(write_dir),
        state.join("server"),
    ];
    if force {
        v.push(crate::cloud::spool_dir(write_dir));
    }
    v
}

/// Runs `sprig reset`; returns the exit code (0 done, 1 failed, 2 usage).
pub fn run(args: &[OsString]) -> i32 {
    let mut root = PathBuf::from("/greengrass");
    let mut force = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("-r" | "--root") => match it.next() {
                Some(r) => root = r.into(),
                None => {
                    eprintln!("sprig reset: -r needs a directory\n{USAGE}");
                    return 2;
                }
            },
            Some("--force" | "-f") => force = true,
            _ => {
                eprintln!(
                    "sprig reset: unknown argument '{}'\n{USAGE}",
                    a.to_string_lossy()
                );
                return 2;
            }
        }
    }
    let config = match Config::load(&root) {
        Ok((c, _)) => c,
        Err(errors) => {
            for e in errors {
                eprintln!("sprig reset: {e}");
            }
            return 1;
        }
    };
    let running = crate::daemon::running_pid(&config);
    if let (true, Some(pid)) = (force, running) {
        eprintln!(
            "sprig reset: --force also removes the cloud spool, which the running core (pid {pid}) holds open; stop it first (`sprig stop -r {}`)",
            root.display()
        );
        return 1;
    }
    let layout = Layout::new(&config.write_dir);
    let Some(lock) = super::lock_and_recover(&layout, "reset") else {
        return 1;
    };
    let id = super::new_id();
    let mut failed = Vec::new();
    for p in removed_paths(&config.write_dir, force) {
        match txn::remove_tree(&p) {
            Ok(()) => println!("removed {}", p.display()),
            Err(e) => failed.push(format!("{}: {e}", p.display())),
        }
    }
    let (status, reason) = if failed.is_empty() {
        (Status::Success, None)
    } else {
        (
            Status::Failure,
            Some(format!("cannot remove {}", failed.join(", "))),
        )
    };
    let _ = history::record(
        &config.write_dir,
        Entry::new(&id, "ResetDeployment", status, reason.clone()),
    );
    drop(lock);
    if let Some(r) = reason {
        eprintln!("sprig reset: {r}");
        return 1;
    }
    match super::notify_daemon(&config) {
        Some(pid) => println!(
            "reset {id} Success: the running core (pid {pid}) goes on with the empty group"
        ),
        None => println!("reset {id} Success: the core starts with the empty group"),
    }
    0
}
