//! The async shell of [`super::jobs`]: the control connection (client id = the bare thing
//! name, its own in-memory outbox of [`limits::JOBS_OUTBOX_BYTES`]), the inbox of Jobs
//! messages, and the deployments it runs.
//!
//! A job's deployment runs as a child process, `sprig deploy FILE -r ROOT --id ID` (the same
//! validation, staging, commit and SIGHUP to this daemon as on the command line), so the event
//! loop never waits on unzip or fsync. The task learns the outcome from the deployment history
//! (the daemon's SIGCHLD handler reaps every child, so the exit status is not ours to read).
//! The job being worked on is kept in `ggc/var/state/deployments/job.json`: after a restart it
//! is finished (its deployment's final status is reported) or run again, never forgotten.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use async_executor::LocalExecutor;
use async_io::Timer;
use bytes::Bytes;
use futures_lite::future;

use super::history::{self, Status};
use super::jobs::{Action, Jobs, MAX_JOBS_MESSAGE_BYTES};
use crate::cloud::{Cloud, CloudSettings, LinkState};
use crate::config::Config;
use crate::json::{self, Value};
use crate::limits;
use crate::spool::Spool;
use crate::workq::Notify;

/// Handle for the status section.
pub struct JobsLink {
    cloud: Cloud,
    state: RefCell<Counters>,
}

#[derive(Default)]
struct Counters {
    current: Option<String>,
    succeeded: u64,
    failed: u64,
    rejected: u64,
    inbox_dropped: u64,
}

type Inbox = Rc<RefCell<VecDeque<(String, Bytes)>>>;

/// Opens the control connection and runs the Jobs client on `ex`.
pub fn start(ex: &LocalExecutor<'_>, config: &Config, link: &CloudSettings) -> Rc<JobsLink> {
    let jobs = Jobs::new(&link.thing_name);
    let settings = link.control(jobs.filters());
    let inbox: Inbox = Rc::new(RefCell::new(VecDeque::new()));
    let wake = Rc::new(Notify::default());
    let dropped = Rc::new(std::cell::Cell::new(0u64));
    let sink = {
        let (inbox, wake, dropped) = (inbox.clone(), wake.clone(), dropped.clone());
        move |topic: &str, payload: Bytes| {
            let mut q = inbox.borrow_mut();
            if q.len() >= limits::JOBS_INBOX_MESSAGES || payload.len() > MAX_JOBS_MESSAGE_BYTES {
                dropped.set(dropped.get() + 1);
                log::warn!("jobs: message on {topic:?} dropped: inbox full or message too large");
                return false;
            }
            q.push_back((topic.to_string(), payload));
            wake.notify();
            true
        }
    };
    log::info!(
        "jobs: control connection {} to {}:{}",
        settings.client_id(0),
        settings.host,
        settings.port
    );
    let cloud = Cloud::start(
        ex,
        settings,
        Spool::memory(limits::JOBS_OUTBOX_BYTES),
        Box::new(sink),
    );
    let handle = Rc::new(JobsLink {
        cloud: cloud.clone(),
        state: RefCell::new(Counters::default()),
    });
    let runner = Runner {
        config: config.clone(),
        jobs,
        cloud,
        handle: handle.clone(),
        running: None,
        dropped,
    };
    ex.spawn(runner.run(inbox, wake)).detach();
    handle
}

impl JobsLink {
    /// The `jobs` status section.
    pub fn status(&self) -> Value {
        let c = self.state.borrow();
        let conn = self.cloud.status().connections.first().cloned();
        let int = |n: u64| Value::Int(n.min(i64::MAX as u64) as i64);
        Value::Object(vec![
            (
                "control".into(),
                Value::String(conn.map_or("-".into(), |c| {
                    format!("{} {}", c.client_id, c.state.as_str())
                })),
            ),
            (
                "job".into(),
                Value::String(c.current.clone().unwrap_or_else(|| "none".into())),
            ),
            ("succeeded".into(), int(c.succeeded)),
            ("failed".into(), int(c.failed)),
            ("rejected".into(), int(c.rejected)),
            ("inbox_dropped".into(), int(c.inbox_dropped)),
        ])
    }
}

/// A deployment running for a job.
struct Running {
    job_id: String,
    deployment_id: String,
    pid: Option<i32>,
    /// Rounds seen with the process gone and no final status.
    gone_rounds: u32,
}

struct Runner {
    config: Config,
    jobs: Jobs,
    cloud: Cloud,
    handle: Rc<JobsLink>,
    running: Option<Running>,
    dropped: Rc<std::cell::Cell<u64>>,
}

fn job_file(write_dir: &Path) -> PathBuf {
    history::dir(write_dir).join("job.json")
}

fn job_group_file(write_dir: &Path) -> PathBuf {
    history::dir(write_dir).join("job-group.json")
}

impl Runner {
    async fn run(mut self, inbox: Inbox, wake: Rc<Notify>) {
        self.resume();
        let mut sessions = 0;
        loop {
            future::or(wake.notified(), async {
                Timer::after(Duration::from_millis(limits::JOBS_CHECK_MS)).await;
            })
            .await;
            if let Some(c) = self.cloud.status().connections.first() {
                if c.sessions != sessions && c.state == LinkState::Connected {
                    sessions = c.sessions;
                    let a = self.jobs.connected();
                    self.act(a);
                }
            }
            loop {
                let next = inbox.borrow_mut().pop_front();
                let Some((topic, payload)) = next else { break };
                let a = self.jobs.message(&topic, &payload);
                self.act(a);
            }
            self.check_running();
            let mut c = self.handle.state.borrow_mut();
            c.current = self.jobs.current().map(str::to_string);
            c.inbox_dropped = self.dropped.get();
        }
    }

    /// A job left by the previous run: report its deployment's outcome, or run it again.
    fn resume(&mut self) {
        let w = self.config.write_dir.clone();
        let Ok(Some(bytes)) = super::read_capped(&job_file(&w), MAX_JOBS_MESSAGE_BYTES as u64)
        else {
            return;
        };
        let doc = json::parse(&bytes, MAX_JOBS_MESSAGE_BYTES, 4).ok();
        let field = |k: &str| {
            doc.as_ref()
                .and_then(|d| d.get(k))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let (Some(job_id), Some(dep)) = (field("jobId"), field("deploymentId")) else {
            log::warn!("jobs: {} is unreadable; ignored", job_file(&w).display());
            let _ = std::fs::remove_file(job_file(&w));
            return;
        };
        log::info!("jobs: job {job_id} was in progress when the core stopped; finishing it");
        self.jobs.resume(&job_id);
        self.running = Some(Running {
            job_id: job_id.clone(),
            deployment_id: dep,
            pid: None,
            gone_rounds: 0,
        });
        // Its deployment's final status, if it has one, is reported by check_running; if it
        // never started (no status), it is run again.
        let known = self
            .running
            .as_ref()
            .and_then(|r| final_status(&w, &r.deployment_id));
        if known.is_none() {
            match std::fs::read_to_string(job_group_file(&w)) {
                Ok(group_json) => self.deploy(&job_id, &group_json),
                Err(e) => {
                    let a = self.jobs.deployed(
                        &job_id,
                        Err(format!("the job's group was lost at a restart: {e}")),
                    );
                    self.running = None;
                    self.act(a);
                }
            }
        }
    }

    fn act(&mut self, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Publish { topic, payload } => {
                    self.count(&payload);
                    let _ = self.cloud.publish(&topic, Bytes::from(payload));
                }
                Action::Deploy { job_id, group_json } => self.deploy(&job_id, &group_json),
                Action::Log(m) => log::warn!("{m}"),
            }
        }
    }

    fn count(&self, payload: &str) {
        let mut guard = self.handle.state.borrow_mut();
        let c = &mut *guard;
        for (word, n) in [
            ("\"SUCCEEDED\"", &mut c.succeeded),
            ("\"FAILED\"", &mut c.failed),
            ("\"REJECTED\"", &mut c.rejected),
        ] {
            if payload.starts_with(&format!("{{\"status\":{word}")) {
                *n += 1;
            }
        }
    }

    /// Writes the job file and the group, then starts `sprig deploy` for them.
    fn deploy(&mut self, job_id: &str, group_json: &str) {
        let w = self.config.write_dir.clone();
        let dep = format!("job-{}", super::new_id());
        let record = Value::Object(vec![
            ("jobId".into(), Value::String(job_id.into())),
            ("deploymentId".into(), Value::String(dep.clone())),
        ]);
        let written =
            super::write_durably(&job_group_file(&w), group_json.as_bytes()).and_then(|()| {
                super::write_durably(&job_file(&w), json::to_string(&record).as_bytes())
            });
        let spawned = written
            .map_err(|e| format!("cannot write the job's files: {e}"))
            .and_then(|()| {
                let log = std::fs::File::create(history::dir(&w).join("job-deploy.log"))
                    .map_err(|e| format!("cannot create job-deploy.log: {e}"))?;
                let exe = std::env::current_exe()
                    .map_err(|e| format!("cannot find sprig itself: {e}"))?;
                std::process::Command::new(exe)
                    .arg("deploy")
                    .arg(job_group_file(&w))
                    .arg("-r")
                    .arg(&self.config.root)
                    .args(["--id", &dep])
                    .stdin(std::process::Stdio::null())
                    .stdout(log.try_clone().map_err(|e| e.to_string())?)
                    .stderr(log)
                    .spawn()
                    .map_err(|e| format!("cannot start sprig deploy: {e}"))
            });
        match spawned {
            Ok(child) => {
                log::info!(
                    "jobs: job {job_id}: deployment {dep} started (pid {})",
                    child.id()
                );
                self.running = Some(Running {
                    job_id: job_id.to_string(),
                    deployment_id: dep,
                    pid: Some(child.id() as i32),
                    gone_rounds: 0,
                });
                // Not waited on: the daemon's SIGCHLD handler reaps it.
                drop(child);
            }
            Err(e) => {
                log::error!("jobs: job {job_id}: {e}");
                let a = self.jobs.deployed(job_id, Err(e));
                self.finish();
                self.act(a);
            }
        }
    }

    /// Reports a running deployment that reached a final status.
    fn check_running(&mut self) {
        let Some(r) = self.running.as_mut() else {
            return;
        };
        let w = &self.config.write_dir;
        let result = match final_status(w, &r.deployment_id) {
            Some(res) => res,
            None => {
                let alive = r.pid.is_some_and(crate::sys::process_exists);
                if alive {
                    return;
                }
                r.gone_rounds += 1;
                if r.gone_rounds < 3 {
                    return;
                }
                Err(format!(
                    "the deployment process ended without a status (see {})",
                    history::dir(w).join("job-deploy.log").display()
                ))
            }
        };
        let job_id = r.job_id.clone();
        log::info!(
            "jobs: job {job_id}: deployment {} ended: {result:?}",
            r.deployment_id
        );
        let a = self.jobs.deployed(&job_id, result);
        self.finish();
        self.act(a);
    }

    fn finish(&mut self) {
        self.running = None;
        let _ = std::fs::remove_file(job_file(&self.config.write_dir));
        let _ = std::fs::remove_file(job_group_file(&self.config.write_dir));
    }
}

/// `Ok(id)` / `Err(reason)` once the deployment has a final status.
fn final_status(write_dir: &Path, id: &str) -> Option<Result<String, String>> {
    let (all, _) = history::load(write_dir);
    let e = all.into_iter().find(|e| e.id == id)?;
    match e.status {
        Status::Success => Some(Ok(e.id)),
        Status::Failure => Some(Err(e.reason.unwrap_or_else(|| "failed".into()))),
        _ => None,
    }
}
