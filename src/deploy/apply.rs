//! The running daemon's side of a deployment: notice it, then apply the new group in place.
//!
//! `sprig deploy` and `sprig reset` send SIGHUP when they have installed a group (the daemon's
//! signal task calls [`Applier::wake`]); besides, every [`limits::DEPLOY_POLL_MS`] the task
//! checks whether group.json changed (device, inode, size, mtime) or a killed deployment left
//! a journal. A deployment in progress holds the lock: the task waits for the next round.
//!
//! Applying: the group is loaded as at start ([`Group::load_validated`]: a group that fails
//! validation keeps the one in force); the hub swaps its subscription table and device list
//! in one step (devices removed or re-certified are disconnected, the others stay connected);
//! logging settings are applied; the "group applied" hooks run (the seam for the Lambda
//! runner: restart functions whose code or configuration changed). The local server
//! certificate does not depend on the group and is kept. Spooler settings and cloud-sourced
//! subscriptions (the cloud link's SUBSCRIBEs) take effect at the next start: logged.

use std::cell::{Cell, RefCell};
use std::os::unix::fs::MetadataExt;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_io::Timer;
use futures_lite::future;

use super::txn::{self, Layout};
use crate::broker::Hub;
use crate::config::{Config, Endpoint, Group};
use crate::json::Value;
use crate::limits;
use crate::logging;
use crate::workq::Notify;

/// Called with the new group after it was applied (on the event loop; must not block).
pub type GroupHook = Rc<dyn Fn(&Group)>;

/// Identity of group.json on disk; a rename (a deployment) changes the inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

fn stamp(layout: &Layout) -> Option<Stamp> {
    let m = std::fs::metadata(layout.group_file()).ok()?;
    Some(Stamp {
        dev: m.dev(),
        ino: m.ino(),
        len: m.len(),
        mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
    })
}

/// Applies deployments to the running daemon.
pub struct Applier {
    config: Config,
    layout: Layout,
    hub: Rc<Hub>,
    current: RefCell<Group>,
    hooks: RefCell<Vec<GroupHook>>,
    wake: Rc<Notify>,
    seen: Cell<Option<Stamp>>,
    /// Applied since start, and the time of the last one (s since the epoch).
    applied: Cell<u64>,
    last_applied: Cell<u64>,
}

impl Applier {
    /// `wake` is notified by the daemon's signal task on SIGHUP. The applier owns the group in
    /// force: the daemon keeps no other copy (the largest group is ≈2 MB).
    pub fn new(config: &Config, group: Group, hub: Rc<Hub>, wake: Rc<Notify>) -> Rc<Applier> {
        let layout = Layout::new(&config.write_dir);
        Rc::new(Applier {
            seen: Cell::new(stamp(&layout)),
            config: config.clone(),
            layout,
            hub,
            current: RefCell::new(group),
            hooks: RefCell::new(Vec::new()),
            wake,
            applied: Cell::new(0),
            last_applied: Cell::new(0),
        })
    }

    /// Adds a hook run after every applied group (the Lambda runner's `apply`).
    pub fn on_group_applied(&self, hook: GroupHook) {
        self.hooks.borrow_mut().push(hook);
    }

    /// Look now (SIGHUP).
    pub fn wake(&self) {
        self.wake.notify();
    }

    /// The group in force, borrowed: let go of it before the event loop runs again (a
    /// deployment replaces it).
    pub fn group(&self) -> std::cell::Ref<'_, Group> {
        self.current.borrow()
    }

    /// Runs forever: wait for a wake-up or the poll interval, then check.
    pub async fn run(self: Rc<Self>) {
        let poll = Duration::from_millis(limits::DEPLOY_POLL_MS);
        loop {
            let woken = future::or(
                async {
                    self.wake.notified().await;
                    true
                },
                async {
                    Timer::after(poll).await;
                    false
                },
            )
            .await;
            self.check(woken);
        }
    }

    /// One round: recover leftovers if the lock is free, then apply a changed group.
    fn check(&self, forced: bool) {
        let lock = match txn::try_lock(&self.layout) {
            Ok(Some(l)) => l,
            Ok(None) => return, // a deployment is being written: next round
            Err(e) => {
                log::debug!("deployment lock: {e}");
                return;
            }
        };
        if self.layout.has_leftovers() {
            match txn::recover(&self.layout, &lock) {
                Ok(r) => log::warn!("an interrupted deployment was found: {r:?}"),
                Err(e) => log::error!("cannot recover an interrupted deployment: {e}"),
            }
        }
        let now = stamp(&self.layout);
        if !forced && now == self.seen.get() {
            return;
        }
        self.seen.set(now);
        let (group, problems) = Group::load_validated(&self.config);
        drop(lock);
        for p in &problems {
            log::warn!("deployment: {p}");
        }
        self.apply(group);
    }

    /// Applies `group` if it differs from the one in force. The old group is dropped before
    /// the hub builds the new routing table, and neither group is copied: a hot deployment of
    /// the largest group holds two groups at most (ARCHITECTURE.md, "The group-parse
    /// transient").
    pub fn apply(&self, group: Group) {
        // An equal group put in place of itself changes nothing.
        let old = self.current.replace(group);
        let new = self.current.borrow();
        if old == *new {
            log::info!("deployment: the group is unchanged; nothing to apply");
            return;
        }
        let loggers_changed = old.effective_loggers() != new.effective_loggers();
        let spooler_changed = old.spooler != new.spooler;
        let stream_manager = |g: &Group| {
            g.system_function("GGStreamManager")
                .map(|f| f.environment.clone())
        };
        let streams_changed = stream_manager(&old) != stream_manager(&new);
        let cloud_changed = cloud_sourced(&old) != cloud_sourced(&new);
        drop(old);
        let dropped = self.hub.apply_group(&new);
        for d in &dropped {
            log::info!("deployment: device {d} is no longer in the group (or its certificate changed): disconnected");
        }
        if loggers_changed {
            logging::init(logging::Settings::from_group(
                &self.config.write_dir,
                &new.loggers,
                logging::echo_stderr(),
            ));
        }
        if spooler_changed {
            log::warn!(
                "deployment: GGCloudSpooler settings changed; they take effect at the next start"
            );
        }
        if streams_changed {
            log::warn!("deployment: GGStreamManager (stream manager) was added, removed or changed; that takes effect at the next start");
        }
        if cloud_changed {
            log::warn!("deployment: subscriptions from the cloud changed; the cloud link subscribes to them at the next start");
        }
        let hooks = self.hooks.borrow().clone();
        for h in hooks {
            h(&new);
        }
        self.applied.set(self.applied.get() + 1);
        self.last_applied.set(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        );
        log::info!(
            "deployment applied: {} devices, {} subscriptions, {} functions{}",
            new.devices.len(),
            new.subscriptions.len(),
            new.functions.len(),
            if dropped.is_empty() {
                String::new()
            } else {
                format!("; disconnected {}", dropped.join(", "))
            }
        );
    }

    /// The `deployment` status section.
    pub fn status(&self) -> Value {
        let g = self.current.borrow();
        let int = |n: u64| Value::Int(n.min(i64::MAX as u64) as i64);
        Value::Object(vec![
            ("applied_since_start".into(), int(self.applied.get())),
            ("last_applied".into(), int(self.last_applied.get())),
            ("devices".into(), int(g.devices.len() as u64)),
            ("subscriptions".into(), int(g.subscriptions.len() as u64)),
            ("functions".into(), int(g.functions.len() as u64)),
        ])
    }
}

fn cloud_sourced(g: &Group) -> Vec<&str> {
    let mut v: Vec<&str> = g
        .subscriptions
        .iter()
        .filter(|s| s.source == Endpoint::Cloud)
        .map(|s| s.subject.as_str())
        .collect();
    v.sort_unstable();
    v
}
