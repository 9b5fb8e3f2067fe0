//! The async shell of [`super::jobs`]: the control connection (client id = the bare thing
//! name, its own in-memory outbox of [`limits::JOBS_OUTBOX_BYTES`]), the inbox of Jobs
//! messages, and the deployments it runs.
//!
//! Files a job names (`groupUrl`, `lambdas[].url`) are downloaded first ([`fetch`]: HTTPS,
//! streamed to `ggc/var/state/deployments/job/`, at most [`limits::JOBS_DOWNLOAD_ATTEMPTS`]
//! attempts with backoff) and their SHA-256 checked before anything is staged.
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

use super::fetch;
use super::history::{self, Status};
use super::jobs::{Action, Fetch, GroupSource, JobPlan, Jobs, MAX_JOBS_MESSAGE_BYTES};
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
        link: link.clone(),
        work: None,
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
    /// The cloud link's settings (caPath, proxy) for downloads.
    link: CloudSettings,
    /// A job to download and deploy (taken by the loop).
    work: Option<(String, JobPlan, String)>,
    jobs: Jobs,
    cloud: Cloud,
    handle: Rc<JobsLink>,
    running: Option<Running>,
    dropped: Rc<std::cell::Cell<u64>>,
}

fn job_file(write_dir: &Path) -> PathBuf {
    history::dir(write_dir).join("job.json")
}

/// Where a job's files are downloaded (emptied for every job).
fn job_dir(write_dir: &Path) -> PathBuf {
    history::dir(write_dir).join("job")
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
            if let Some((job_id, plan, document)) = self.work.take() {
                self.execute(&job_id, plan, &document).await;
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
        let Ok(Some(bytes)) = super::read_capped(&job_file(&w), 2 * MAX_JOBS_MESSAGE_BYTES as u64)
        else {
            return;
        };
        let doc = json::parse(
            &bytes,
            2 * MAX_JOBS_MESSAGE_BYTES,
            crate::limits::MAX_JSON_DEPTH,
        )
        .ok();
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
        if final_status(&w, &dep).is_some() {
            // Reported by check_running on the first round.
            self.running = Some(Running {
                job_id,
                deployment_id: dep,
                pid: None,
                gone_rounds: 0,
            });
            return;
        }
        let document = doc.as_ref().and_then(|d| d.get("document"));
        match super::jobs::plan(document) {
            Ok(plan) => {
                self.work = Some((
                    job_id,
                    plan,
                    document.map(json::to_string).unwrap_or_default(),
                ))
            }
            Err(e) => {
                let a = self
                    .jobs
                    .deployed(&job_id, Err(format!("cannot resume: {e}")));
                self.finish();
                self.act(a);
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
                Action::Deploy {
                    job_id,
                    plan,
                    document,
                } => self.work = Some((job_id, plan, document)),
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

    /// Records the job, downloads and verifies its files, then starts `sprig deploy`.
    async fn execute(&mut self, job_id: &str, plan: JobPlan, document: &str) {
        let w = self.config.write_dir.clone();
        let dep = format!("job-{}", super::new_id());
        let doc = json::parse(
            document.as_bytes(),
            MAX_JOBS_MESSAGE_BYTES,
            crate::limits::MAX_JSON_DEPTH,
        )
        .unwrap_or(Value::Null);
        let record = Value::Object(vec![
            ("jobId".into(), Value::String(job_id.into())),
            ("deploymentId".into(), Value::String(dep.clone())),
            ("document".into(), doc),
        ]);
        let result = async {
            let dir = job_dir(&w);
            super::txn::remove_tree(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            super::write_durably(&job_file(&w), json::to_string(&record).as_bytes())
                .map_err(|e| format!("cannot write the job file: {e}"))?;
            let group = dir.join("group.json");
            match &plan.group {
                GroupSource::Inline(text) => super::write_file_synced(&group, text.as_bytes())
                    .map_err(|e| format!("{}: {e}", group.display()))?,
                GroupSource::Download(f) => {
                    self.fetch("groupUrl", f, &group, limits::MAX_GROUP_JSON_BYTES as u64)
                        .await?
                }
            }
            let mut lambdas = Vec::new();
            for (id, f) in &plan.lambdas {
                let zip = dir.join(format!("lambda-{id}.zip"));
                self.fetch(
                    &format!("lambda {id}"),
                    f,
                    &zip,
                    limits::DEPLOY_MAX_CODE_BYTES,
                )
                .await?;
                lambdas.push(format!("{id}={}", zip.display()));
            }
            self.spawn_deploy(&group, &lambdas, &dep)
        }
        .await;
        match result {
            Ok(pid) => {
                log::info!("jobs: job {job_id}: deployment {dep} started (pid {pid})");
                self.running = Some(Running {
                    job_id: job_id.to_string(),
                    deployment_id: dep,
                    pid: Some(pid),
                    gone_rounds: 0,
                });
            }
            Err(e) => {
                log::error!("jobs: job {job_id}: {e}");
                let a = self.jobs.deployed(job_id, Err(e));
                self.finish();
                self.act(a);
            }
        }
    }

    /// Downloads `f` into `dest` with retries; the SHA-256 must match.
    async fn fetch(&self, what: &str, f: &Fetch, dest: &Path, max: u64) -> Result<(), String> {
        let ca = &self.link.ca;
        let proxy = self.link.proxy.as_ref();
        let idle = Duration::from_secs(limits::JOBS_DOWNLOAD_IDLE_SECS);
        let mut wait = Duration::from_millis(limits::JOBS_DOWNLOAD_BACKOFF_MS);
        let mut last = String::new();
        for attempt in 1..=limits::JOBS_DOWNLOAD_ATTEMPTS {
            match fetch::download(&f.url, dest, max, idle, ca, proxy).await {
                Ok(sha) if sha == f.sha256 => return Ok(()),
                Ok(sha) => {
                    let _ = std::fs::remove_file(dest);
                    return Err(format!(
                        "{what}: SHA-256 mismatch: the document says {}, the download is {sha}; nothing was deployed",
                        f.sha256
                    ));
                }
                Err(e) => {
                    log::warn!(
                        "jobs: {what}: download attempt {attempt} of {} from {}: {e}",
                        limits::JOBS_DOWNLOAD_ATTEMPTS,
                        f.url.host
                    );
                    last = e;
                }
            }
            if attempt < limits::JOBS_DOWNLOAD_ATTEMPTS {
                Timer::after(wait).await;
                wait *= 2;
            }
        }
        let _ = std::fs::remove_file(dest);
        Err(format!(
            "{what}: download from {} failed {} times; last: {last}",
            f.url.host,
            limits::JOBS_DOWNLOAD_ATTEMPTS
        ))
    }

    /// Starts `sprig deploy GROUP [--lambda ID=ZIP]... -r ROOT --id DEP`; its pid.
    fn spawn_deploy(&self, group: &Path, lambdas: &[String], dep: &str) -> Result<i32, String> {
        let w = &self.config.write_dir;
        let log = std::fs::File::create(history::dir(w).join("job-deploy.log"))
            .map_err(|e| format!("cannot create job-deploy.log: {e}"))?;
        let exe = std::env::current_exe().map_err(|e| format!("cannot find sprig itself: {e}"))?;
        let mut cmd = std::process::Command::new(exe);
        cmd.arg("deploy").arg(group);
        for l in lambdas {
            cmd.args(["--lambda", l]);
        }
        let child = cmd
            .arg("-r")
            .arg(&self.config.root)
            .args(["--id", dep])
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start sprig deploy: {e}"))?;
        // Not waited on: the daemon's SIGCHLD handler reaps it.
        Ok(child.id() as i32)
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
        let _ = super::txn::remove_tree(&job_dir(&self.config.write_dir));
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
