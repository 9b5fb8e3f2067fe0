//! The async shell of the Lambda runner: the IPC server on `127.0.0.1:ggDaemonPort`, worker
//! processes (spawn, kill, reap through `daemon::ChildExits`), their output into the function
//! logs, and the supervisor's clock. All decisions are the supervisor's ([`super::Supervisor`])
//! and the protocol's ([`crate::ipc`]).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use async_executor::LocalExecutor;
use async_io::{Async, Timer};
use bytes::Bytes;
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};

use super::runtime::{self, CoreCtx, ROUTER_ARN, SHADOW_ARN};
use super::{Action, InvId, Spec, Supervisor, WorkerId};
use crate::broker::LocalSink;
use crate::config::{Config, Endpoint, Group};
use crate::daemon::ChildExits;
use crate::ipc::{self, Call, IpcError, Parse, Request};
use crate::json::Value;
use crate::limits;
use crate::sys;
use crate::workq::{Notify, QueueHandle, WorkItem};

/// A refused shadow call: the `{code, message}` the SDK raises as `ShadowError`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowCallError {
    pub code: u16,
    pub message: String,
}

/// The seam to the local shadow service for `GGShadowService` calls from functions (get,
/// update, delete on `$aws/things/<thing>/shadow/<op>`; no subscription needed). Returns the
/// accepted document or the error. Called on the event loop; must not block.
pub trait ShadowCalls {
    fn call(
        &self,
        caller_arn: &str,
        topic: &str,
        payload: &[u8],
    ) -> Result<Vec<u8>, ShadowCallError>;
}

/// Until the shadow service is merged: every call gets a 503 error at once (not a hang).
pub struct NoShadowService;

impl ShadowCalls for NoShadowService {
    fn call(
        &self,
        _caller: &str,
        _topic: &str,
        _payload: &[u8],
    ) -> Result<Vec<u8>, ShadowCallError> {
        Err(ShadowCallError {
            code: 503,
            message: "the local shadow service is not available in this sprig build".into(),
        })
    }
}

/// IPC counters for `sprig status`.
#[derive(Debug, Default)]
pub struct IpcStats {
    pub connections: Cell<usize>,
    /// Closed at accept: [`limits::IPC_MAX_CONNECTIONS`] open.
    pub refused_connections: Cell<u64>,
    /// 401: missing or unknown token.
    pub refused_token: Cell<u64>,
    /// 403: a worker asked for another function's work.
    pub refused_forbidden: Cell<u64>,
    /// Closed: no complete, token-bearing request within systemComponentAuthTimeout.
    pub auth_timeouts: Cell<u64>,
    /// 4xx for malformed, oversized or unknown requests.
    pub bad_requests: Cell<u64>,
    /// Publishes from functions the work queue could not take.
    pub publish_dropped: Cell<u64>,
    /// Worker starts that failed (no python3, missing code, ...).
    pub spawn_failures: Cell<u64>,
}

fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Worker(WorkerId),
    Inv(InvId),
}

struct Inner {
    sup: RefCell<Supervisor>,
    ctx: RefCell<CoreCtx>,
    queue: QueueHandle,
    shadow: RefCell<Rc<dyn ShadowCalls>>,
    /// Delivers an AllOrError publish to all of its targets or to none (the hub's
    /// `deliver_all_or_none`).
    all_or_none: RefCell<Option<AllOrNone>>,
    waiters: RefCell<HashMap<Key, Waker>>,
    /// Wakes the clock task: deadlines may have changed.
    clock: Notify,
    /// Worker output pipes waiting for their reader tasks (spawned by `run`, which holds the
    /// executor).
    pipes: RefCell<Vec<(String, LogPipe)>>,
    pipes_ready: Notify,
    auth_timeout: Duration,
    /// The IPC listener: bound at start when the group has functions, else when a deployment
    /// brings the first one (`apply`), so a core without functions holds no port.
    listener: RefCell<Option<Rc<Async<TcpListener>>>>,
    listening: Notify,
    /// Each function's code directory as last seen (device, inode, mtime): a deployment that
    /// replaces the code (a new directory renamed in) restarts the function.
    code_stamps: RefCell<HashMap<String, Option<CodeStamp>>>,
    stats: IpcStats,
    child_exits: ChildExits,
}

enum LogPipe {
    Out(std::process::ChildStdout),
    Err(std::process::ChildStderr),
}

/// A code directory's identity: device, inode, mtime (seconds).
type CodeStamp = (u64, u64, i64);

/// `Hub::deliver_all_or_none`, handed over without a reference cycle: `true` when the item
/// was delivered to every target, `false` when one had no room and none got it.
pub type AllOrNone = Box<dyn Fn(&WorkItem) -> bool>;

/// The Lambda runner: clone freely (one shared state).
#[derive(Clone)]
pub struct Runner(Rc<Inner>);

/// The functions sprig runs (system functions are the core's own) and why some cannot run.
pub fn specs(group: &Group) -> Vec<Spec> {
    group
        .functions
        .iter()
        .filter(|f| f.system.is_none())
        .map(|f| Spec {
            function: f.clone(),
            refused: runtime::refusal(f),
        })
        .collect()
}

/// The IPC listener: loopback only.
pub fn bind(port: u16) -> io::Result<Async<TcpListener>> {
    Async::<TcpListener>::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
}

impl Runner {
    pub fn new(
        config: &Config,
        group: &Group,
        queue: QueueHandle,
        child_exits: ChildExits,
    ) -> Runner {
        let exe = std::env::current_exe().ok();
        let ctx = CoreCtx::new(config, group, exe.as_deref(), sys::euid() == 0);
        let specs = specs(group);
        for s in &specs {
            if let Some(why) = &s.refused {
                log::error!("function {} will not run: {why}", s.arn());
            }
        }
        if !ctx.root && !specs.is_empty() {
            log::warn!(
                "sprig is not running as root: functions run as its own user, RunAs is not applied"
            );
        }
        let sup = Supervisor::new(
            specs,
            config.runtime.max_concurrent_limit as usize,
            Instant::now(),
        );
        let runner = Runner(Rc::new(Inner {
            sup: RefCell::new(sup),
            ctx: RefCell::new(ctx),
            queue,
            shadow: RefCell::new(Rc::new(NoShadowService)),
            all_or_none: RefCell::new(None),
            waiters: RefCell::new(HashMap::new()),
            clock: Notify::default(),
            pipes: RefCell::new(Vec::new()),
            pipes_ready: Notify::default(),
            listener: RefCell::new(None),
            listening: Notify::default(),
            code_stamps: RefCell::new(HashMap::new()),
            auth_timeout: Duration::from_millis(u64::from(
                config.core_thing.system_component_auth_timeout,
            )),
            stats: IpcStats::default(),
            child_exits,
        }));
        let functions: Vec<crate::config::Function> = runner
            .0
            .sup
            .borrow()
            .functions()
            .map(|s| s.function.clone())
            .collect();
        for f in &functions {
            runner.code_changed(f);
        }
        runner
    }

    /// Plugs in the shadow service for `GGShadowService` calls.
    pub fn set_shadow(&self, shadow: Rc<dyn ShadowCalls>) {
        *self.0.shadow.borrow_mut() = shadow;
    }

    /// Plugs in the delivery AllOrError publishes use (the hub's `deliver_all_or_none`).
    pub fn set_all_or_none(&self, deliver: AllOrNone) {
        *self.0.all_or_none.borrow_mut() = Some(deliver);
    }

    /// True when `token` is a running worker's (for the stream manager).
    pub fn is_live_token(&self, token: &str) -> bool {
        self.0.sup.borrow().is_live_token(token)
    }

    /// Hot deployment: the new group's functions; changed ones restart, the others keep
    /// running (see [`Supervisor::apply`]).
    pub fn apply(&self, group: &Group) {
        self.0.ctx.borrow_mut().group_id = group.group_id.clone().unwrap_or_default();
        let specs = specs(group);
        // Unchanged configuration but new code: restart too.
        let new_code: Vec<String> = specs
            .iter()
            .filter(|s| self.code_changed(&s.function))
            .map(|s| s.arn().to_string())
            .collect();
        self.0.sup.borrow_mut().apply(specs, Instant::now());
        for arn in new_code {
            log::info!("function {arn}: new code deployed; restarting it");
            self.0.sup.borrow_mut().restart(&arn, Instant::now());
        }
        if self.has_functions() {
            if let Err(e) = self.listen() {
                log::error!("{e}: functions cannot reach the core");
            }
        }
        self.process();
    }

    /// Records the code directory's identity; true when it differs from the one last seen
    /// (a function seen for the first time counts as unchanged: it has no workers yet).
    fn code_changed(&self, f: &crate::config::Function) -> bool {
        use std::os::unix::fs::MetadataExt;
        let dir = runtime::code_dir(&self.0.ctx.borrow().write_dir, f);
        let now = std::fs::metadata(&dir)
            .ok()
            .map(|m| (m.dev(), m.ino(), m.mtime()));
        let before = self.0.code_stamps.borrow_mut().insert(f.arn.clone(), now);
        matches!(before, Some(b) if b != now)
    }

    /// Restarts function `arn` whose code changed on disk (the deployment calls this for
    /// functions whose configuration is unchanged but whose code is new). False if unknown.
    pub fn restart_function(&self, arn: &str) -> bool {
        let known = self.0.sup.borrow_mut().restart(arn, Instant::now());
        self.process();
        known
    }

    /// Invokes `arn` with a message routed to it (Event; subject = the topic).
    pub fn deliver_message(&self, arn: &str, topic: &str, payload: &[u8]) -> bool {
        let r = self.0.sup.borrow_mut().invoke(
            arn,
            payload.to_vec(),
            ipc::encode_context(topic),
            true,
            Instant::now(),
        );
        self.process();
        match r {
            Ok(_) => true,
            Err(e) => {
                log::debug!("message on {topic:?} for {arn} dropped: {e}");
                false
            }
        }
    }

    /// The `functions` and `ipc` status sections.
    pub fn status(&self) -> (Value, Value) {
        let s = &self.0.stats;
        let int = |n: u64| Value::Int(n.min(i64::MAX as u64) as i64);
        let sup = self.0.sup.borrow();
        let ipc = Value::Object(vec![
            (
                "ipc_port".into(),
                int(u64::from(self.0.ctx.borrow().daemon_port)),
            ),
            (
                "ipc_listening".into(),
                Value::Bool(self.0.listener.borrow().is_some()),
            ),
            ("ipc_connections".into(), int(s.connections.get() as u64)),
            (
                "ipc_refused_connections".into(),
                int(s.refused_connections.get()),
            ),
            ("ipc_refused_token".into(), int(s.refused_token.get())),
            (
                "ipc_refused_forbidden".into(),
                int(s.refused_forbidden.get()),
            ),
            ("ipc_auth_timeouts".into(), int(s.auth_timeouts.get())),
            ("ipc_bad_requests".into(), int(s.bad_requests.get())),
            ("ipc_unknown_function".into(), int(sup.unknown_function)),
            ("ipc_publish_dropped".into(), int(s.publish_dropped.get())),
            ("ipc_spawn_failures".into(), int(s.spawn_failures.get())),
        ]);
        (sup.status(), ipc)
    }

    /// Executes the supervisor's actions and lets the clock task see new deadlines.
    fn process(&self) {
        self.execute();
        self.0.clock.notify();
    }

    /// Executes the supervisor's actions.
    fn execute(&self) {
        loop {
            let actions = self.0.sup.borrow_mut().take_actions();
            if actions.is_empty() {
                break;
            }
            for a in actions {
                match a {
                    Action::Spawn { worker, func } => self.spawn(worker, func),
                    Action::Kill { pid } => {
                        if let Err(e) = sys::kill_group(pid, libc::SIGKILL) {
                            log::debug!("kill worker {pid}: {e}");
                        }
                    }
                    Action::WakeWorker(w) => self.wake(Key::Worker(w)),
                    Action::WakeInvoker(i) => self.wake(Key::Inv(i)),
                }
            }
        }
    }

    fn wake(&self, key: Key) {
        if let Some(w) = self.0.waiters.borrow_mut().remove(&key) {
            w.wake();
        }
    }

    fn spawn(&self, worker: WorkerId, func: usize) {
        let Some(f) = self.0.sup.borrow().spec(func).map(|s| s.function.clone()) else {
            return;
        };
        let token = new_token();
        let r = runtime::launch(&self.0.ctx.borrow(), &f, &token).and_then(|l| {
            let mut cmd = Command::new(&l.program);
            cmd.args(&l.args)
                .current_dir(&l.cwd)
                .env_clear()
                .envs(l.env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            {
                use std::os::unix::process::CommandExt;
                cmd.process_group(0);
                if let (Some(u), Some(g)) = (l.uid, l.gid) {
                    // std drops the supplementary groups (setgroups(0)) when it sets a uid as root.
                    cmd.gid(g).uid(u);
                }
            }
            sys::die_with_parent(&mut cmd);
            cmd.spawn()
                .map_err(|e| format!("cannot start {}: {e}", l.program.display()))
        });
        let now = Instant::now();
        match r {
            Ok(mut child) => {
                let pid = child.id() as i32;
                log::info!("function {}: worker {worker} started (pid {pid})", f.arn);
                if let Some(o) = child.stdout.take() {
                    self.0
                        .pipes
                        .borrow_mut()
                        .push((f.arn.clone(), LogPipe::Out(o)));
                }
                if let Some(e) = child.stderr.take() {
                    self.0
                        .pipes
                        .borrow_mut()
                        .push((f.arn.clone(), LogPipe::Err(e)));
                }
                self.0.pipes_ready.notify();
                // Never waited on: the daemon reaps every child on SIGCHLD (ChildExits).
                drop(child);
                self.0.sup.borrow_mut().spawned(worker, pid, token);
            }
            Err(e) => {
                bump(&self.0.stats.spawn_failures);
                let (region, account, name) = runtime::log_parts(&f.arn);
                crate::logging::user_log(
                    &region,
                    &account,
                    &name,
                    log::Level::Error,
                    format_args!("cannot start: {e}"),
                );
                log::error!("function {}: {e}", f.arn);
                self.0.sup.borrow_mut().spawn_failed(worker, now);
            }
        }
    }

    /// True when the group has functions sprig will run (then the IPC port is needed).
    pub fn has_functions(&self) -> bool {
        self.0.sup.borrow().functions().next().is_some()
    }

    /// Binds the IPC port (`coreThing.ggDaemonPort`, loopback only) unless it is bound.
    pub fn listen(&self) -> Result<(), String> {
        if self.0.listener.borrow().is_some() {
            return Ok(());
        }
        let port = self.0.ctx.borrow().daemon_port;
        let l = bind(port).map_err(|e| {
            format!("cannot listen on 127.0.0.1:{port} (coreThing.ggDaemonPort): {e}")
        })?;
        log::info!("Lambda IPC on 127.0.0.1:{port}");
        *self.0.listener.borrow_mut() = Some(Rc::new(l));
        self.0.listening.notify();
        Ok(())
    }

    /// Runs the IPC server, the clock, the reaper and the log readers until cancelled.
    pub async fn run(&self, ex: &LocalExecutor<'_>) {
        self.process();
        let accept = async {
            // Bound at start or by a deployment; if the port was busy, try again now and then.
            let listener = loop {
                let l = self.0.listener.borrow().clone();
                match l {
                    Some(l) => break l,
                    None => {
                        future::or(self.0.listening.notified(), async {
                            Timer::after(Duration::from_secs(limits::IPC_REBIND_SECS)).await;
                        })
                        .await;
                        if self.has_functions() && self.listen().is_ok() {
                            log::info!(
                                "Lambda IPC port bound after all; functions can reach the core"
                            );
                        }
                    }
                }
            };
            let s = &self.0.stats;
            let bound = crate::listen::Bound {
                what: "Lambda IPC",
                target: module_path!(),
                open: &s.connections,
                max: limits::IPC_MAX_CONNECTIONS,
                refused: &s.refused_connections,
            };
            loop {
                let (sock, _) = crate::listen::accept(&listener, &bound).await;
                let me = self.clone();
                ex.spawn(async move {
                    me.serve(sock).await;
                    me.0.stats.connections.set(me.0.stats.connections.get() - 1);
                })
                .detach();
            }
        };
        let clock = async {
            loop {
                let next = self.0.sup.borrow().next_deadline();
                match next {
                    Some(t) => {
                        future::or(
                            async {
                                Timer::at(t).await;
                            },
                            self.0.clock.notified(),
                        )
                        .await
                    }
                    None => self.0.clock.notified().await,
                }
                self.0.sup.borrow_mut().tick(Instant::now());
                self.execute();
            }
        };
        let reaper = async {
            loop {
                let (pid, how) = self.0.child_exits.next().await;
                self.on_exit(pid, how);
            }
        };
        let logs = async {
            loop {
                self.0.pipes_ready.notified().await;
                let pipes: Vec<_> = self.0.pipes.borrow_mut().drain(..).collect();
                for (arn, pipe) in pipes {
                    match pipe {
                        LogPipe::Out(o) => ex.spawn(pump_log(arn, log::Level::Info, o)).detach(),
                        LogPipe::Err(e) => ex.spawn(pump_log(arn, log::Level::Warn, e)).detach(),
                    }
                }
            }
        };
        future::or(future::or(accept, clock), future::or(reaper, logs)).await
    }

    fn on_exit(&self, pid: i32, how: sys::ChildExit) {
        let fi = self.0.sup.borrow_mut().exited(pid, Instant::now());
        if let Some(fi) = fi {
            let arn = self
                .0
                .sup
                .borrow()
                .spec(fi)
                .map(|s| s.arn().to_string())
                .unwrap_or_default();
            log::info!("function {arn}: worker pid {pid} ended ({how:?})");
        }
        self.process();
    }

    /// Stops every worker: SIGTERM, then SIGKILL after [`limits::WORKER_STOP_GRACE_MS`]; waits
    /// for their exits (reaped through ChildExits) within that grace.
    pub async fn stop(&self) {
        let pids = self.0.sup.borrow_mut().stop_all();
        if pids.is_empty() {
            return;
        }
        for &p in &pids {
            let _ = sys::kill_group(p, libc::SIGTERM);
        }
        let grace = Duration::from_millis(limits::WORKER_STOP_GRACE_MS);
        let end = Instant::now() + grace;
        let mut left = pids.len();
        while left > 0 {
            let exit = future::or(async { Some(self.0.child_exits.next().await) }, async {
                Timer::at(end).await;
                None
            })
            .await;
            match exit {
                Some((pid, how)) => {
                    if pids.contains(&pid) {
                        left -= 1;
                    }
                    self.on_exit(pid, how);
                }
                None => break,
            }
        }
        for p in self.0.sup.borrow_mut().stop_all() {
            let _ = sys::kill_group(p, libc::SIGKILL);
        }
        log::info!(
            "Lambda workers stopped ({} of {} ended in the grace time)",
            pids.len() - left,
            pids.len()
        );
    }

    /// One IPC connection: requests in order, keep-alive.
    async fn serve(&self, mut sock: Async<TcpStream>) {
        let mut buf: Vec<u8> = Vec::with_capacity(1024);
        let mut authed = false;
        let auth_deadline = Instant::now() + self.0.auth_timeout;
        loop {
            let req = loop {
                match ipc::parse(&buf) {
                    Ok(Parse::Done(r, n)) => {
                        buf.drain(..n);
                        break Ok(r);
                    }
                    Ok(Parse::Partial) => {}
                    Err(e) => break Err(e),
                }
                let mut chunk = [0u8; 4096];
                let read = sock.read(&mut chunk);
                let n = if authed {
                    read.await
                } else {
                    match future::or(async { Some(read.await) }, async {
                        Timer::at(auth_deadline).await;
                        None
                    })
                    .await
                    {
                        Some(r) => r,
                        None => {
                            bump(&self.0.stats.auth_timeouts);
                            log::debug!(
                                "IPC: closed a connection that sent no authorized request in time"
                            );
                            return;
                        }
                    }
                };
                match n {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            };
            let req = match req {
                Ok(r) => r,
                Err(e) => {
                    bump(&self.0.stats.bad_requests);
                    let _ = sock.write_all(&ipc::error_response(&e, true)).await;
                    return;
                }
            };
            let close = req.close;
            let (resp, ok_auth) = self.handle(req, &mut sock).await;
            authed |= ok_auth;
            if sock.write_all(&resp).await.is_err() || close {
                return;
            }
            if !authed && Instant::now() >= auth_deadline {
                bump(&self.0.stats.auth_timeouts);
                return;
            }
        }
    }

    /// Answers one request; the flag says whether it carried a live token.
    async fn handle(&self, req: Request, sock: &mut Async<TcpStream>) -> (Vec<u8>, bool) {
        let worker = {
            let sup = self.0.sup.borrow();
            match req.token.as_deref() {
                None | Some("") => Err(IpcError::new(401, "missing Authorization token")),
                Some(t) => sup
                    .worker_for_token(t)
                    .ok_or_else(|| IpcError::new(401, "unknown or expired Authorization token")),
            }
        };
        let worker = match worker {
            Ok(w) => w,
            Err(e) => {
                bump(&self.0.stats.refused_token);
                return (ipc::error_response(&e, false), false);
            }
        };
        let r = self.answer(worker, req, sock).await;
        let resp = match r {
            Ok(bytes) => bytes,
            Err(e) => {
                if e.status == 403 {
                    bump(&self.0.stats.refused_forbidden);
                } else if e.status < 500 {
                    bump(&self.0.stats.bad_requests);
                }
                ipc::error_response(&e, false)
            }
        };
        (resp, true)
    }

    async fn answer(
        &self,
        worker: WorkerId,
        req: Request,
        sock: &mut Async<TcpStream>,
    ) -> Result<Vec<u8>, IpcError> {
        let my_arn = self
            .0
            .sup
            .borrow()
            .worker_arn(worker)
            .unwrap_or_default()
            .to_string();
        let own = || {
            if req.arn == my_arn || super::unqualified(&my_arn) == req.arn {
                Ok(())
            } else {
                Err(IpcError::new(
                    403,
                    format!("this worker belongs to {my_arn}, not {}", req.arn),
                ))
            }
        };
        let inv_id = || -> Result<InvId, IpcError> {
            req.invocation_id
                .as_deref()
                .unwrap_or("")
                .parse()
                .map_err(|_| {
                    IpcError::new(
                        400,
                        "X-Amz-InvocationId is not an invocation id of this core",
                    )
                })
        };
        let now = Instant::now();
        match req.call {
            Call::Invoke if is_system(&req.arn, ROUTER_ARN) => {
                self.publish(&my_arn, &req)?;
                Ok(ipc::response(
                    202,
                    &[("X-Amz-InvocationId", "0")],
                    b"",
                    false,
                ))
            }
            Call::Invoke if is_system(&req.arn, SHADOW_ARN) => {
                let custom = ipc::decode_context(req.client_context.as_deref().unwrap_or(""))?;
                let topic = custom.subject.ok_or_else(|| {
                    IpcError::new(400, "a shadow call needs client_context.custom.subject")
                })?;
                let shadow = self.0.shadow.borrow().clone();
                let body = match shadow.call(&my_arn, &topic, &req.body) {
                    Ok(doc) => doc,
                    Err(e) => crate::json::to_string(&Value::Object(vec![
                        ("code".into(), Value::Int(i64::from(e.code))),
                        ("message".into(), Value::String(e.message)),
                    ]))
                    .into_bytes(),
                };
                let id = self.0.sup.borrow_mut().complete(body, None, now);
                self.process();
                Ok(ipc::response(
                    202,
                    &[("X-Amz-InvocationId", &id.to_string())],
                    b"",
                    false,
                ))
            }
            Call::Invoke => {
                let context = req.client_context.clone().unwrap_or_default();
                let r = self
                    .0
                    .sup
                    .borrow_mut()
                    .invoke(&req.arn, req.body, context, req.event, now);
                self.process();
                let id = r?;
                Ok(ipc::response(
                    202,
                    &[("X-Amz-InvocationId", &id.to_string())],
                    b"",
                    false,
                ))
            }
            Call::GetResult => {
                let id = inv_id()?;
                let outcome = self
                    .wait(Key::Inv(id), sock, |sup| sup.take_result(id))
                    .await?;
                let mut headers = vec![];
                if let Some(e) = &outcome.error {
                    headers.push(("X-Amz-Function-Error", e.as_str()));
                }
                Ok(ipc::response(200, &headers, &outcome.body, false))
            }
            Call::GetWork => {
                own()?;
                let d = self
                    .wait(Key::Worker(worker), sock, |sup| {
                        if sup.worker_arn(worker).is_none() {
                            return Err(IpcError::new(410, "this worker was stopped"));
                        }
                        Ok(sup.take_work(worker, Instant::now()))
                    })
                    .await;
                self.process();
                if d.is_err() {
                    self.0.sup.borrow_mut().stop_polling(worker);
                }
                let d = d?;
                Ok(ipc::response(
                    200,
                    &[
                        ("X-Amz-InvocationId", &d.id.to_string()),
                        ("X-Amz-Client-Context", &d.context),
                    ],
                    &d.payload,
                    false,
                ))
            }
            Call::PostResult => {
                own()?;
                let id = inv_id()?;
                let r = self.0.sup.borrow_mut().post_result(
                    worker,
                    id,
                    req.body,
                    req.function_error.clone(),
                    now,
                );
                self.process();
                r?;
                Ok(ipc::response(202, &[], b"", false))
            }
            Call::Initialized => {
                own()?;
                let v = crate::json::parse(
                    &req.body,
                    limits::IPC_MAX_BODY_BYTES,
                    limits::MAX_JSON_DEPTH,
                )
                .ok();
                let success = v
                    .as_ref()
                    .and_then(|v| v.get("Success"))
                    .and_then(|s| s.as_bool())
                    .unwrap_or(false);
                if !success {
                    let msg = v
                        .as_ref()
                        .and_then(|v| v.get("Response"))
                        .and_then(|s| s.as_str())
                        .unwrap_or("")
                        .to_string();
                    log::error!("function {my_arn}: initialization failed: {msg}");
                    let (region, account, name) = runtime::log_parts(&my_arn);
                    crate::logging::user_log(
                        &region,
                        &account,
                        &name,
                        log::Level::Error,
                        format_args!("initialization failed: {msg}"),
                    );
                }
                self.0.sup.borrow_mut().initialized(worker, success);
                self.process();
                Ok(ipc::response(202, &[], b"", false))
            }
        }
    }

    /// Polls `f` until it yields a value, sleeping on `key`'s wake-up; gives up when the
    /// client closes the connection (a readable EOF) meanwhile.
    async fn wait<T>(
        &self,
        key: Key,
        sock: &mut Async<TcpStream>,
        mut f: impl FnMut(&mut Supervisor) -> Result<Option<T>, IpcError>,
    ) -> Result<T, IpcError> {
        let ready = future::poll_fn(|cx| {
            let r = f(&mut self.0.sup.borrow_mut());
            match r {
                Ok(Some(v)) => Poll::Ready(Ok(v)),
                Err(e) => Poll::Ready(Err(e)),
                Ok(None) => {
                    self.0.waiters.borrow_mut().insert(key, cx.waker().clone());
                    Poll::Pending
                }
            }
        });
        let gone = async {
            // A waiting client sends nothing; readable here means it closed (or misbehaves).
            let _ = sock.readable().await;
            let mut probe = [0u8; 1];
            match sock.get_ref().peek(&mut probe) {
                Ok(0) | Err(_) => Err(IpcError::new(499, "client closed the connection")),
                Ok(_) => future::pending().await,
            }
        };
        let r = future::or(ready, gone).await;
        self.0.waiters.borrow_mut().remove(&key);
        r
    }

    /// GGRouter: a function's publish enters the work queue with the function as Source.
    fn publish(&self, my_arn: &str, req: &Request) -> Result<(), IpcError> {
        let custom = ipc::decode_context(req.client_context.as_deref().unwrap_or(""))?;
        let topic = custom.subject.ok_or_else(|| {
            IpcError::new(
                400,
                "a publish needs client_context.custom.subject (the topic)",
            )
        })?;
        if topic.is_empty()
            || topic.len() > limits::MAX_LOCAL_TOPIC_BYTES
            || topic.contains(['+', '#', '\0'])
        {
            return Err(IpcError::new(
                400,
                format!(
                    "{topic:?} is not a valid topic name (at most {} bytes, no wildcards)",
                    limits::MAX_LOCAL_TOPIC_BYTES
                ),
            ));
        }
        if req.body.len() > limits::MAX_PAYLOAD_BYTES {
            return Err(IpcError::new(
                413,
                format!(
                    "payload of {} bytes; allowed at most {}",
                    req.body.len(),
                    limits::MAX_PAYLOAD_BYTES
                ),
            ));
        }
        let all_or_error = custom.queue_full_policy.as_deref() == Some("AllOrError");
        let item = WorkItem {
            source: Endpoint::Function(my_arn.to_string()),
            topic,
            payload: Bytes::from(req.body.clone()),
        };
        if all_or_error {
            // Checked and delivered in one step on this thread, past the work queue: room
            // checked now but used later would let items already queued for the same target
            // take it, and the call would have answered "published" for a dropped message.
            // (So an AllOrError publish can overtake this function's BestEffort ones still
            // in the work queue.)
            if let Some(deliver) = self.0.all_or_none.borrow().as_ref() {
                if deliver(&item) {
                    return Ok(());
                }
                bump(&self.0.stats.publish_dropped);
                return Err(IpcError::new(
                    503,
                    format!("a target of {:?} is full: message not delivered to any (queueFullPolicy AllOrError)", item.topic),
                ));
            }
        }
        if self.0.queue.push(item).is_err() {
            bump(&self.0.stats.publish_dropped);
            if all_or_error {
                return Err(IpcError::new(503, "the core's work queue is full (runtime.maxWorkItemCount): message not delivered (queueFullPolicy AllOrError)"));
            }
        }
        Ok(())
    }
}

fn is_system(arn: &str, system: &str) -> bool {
    arn == system || arn.strip_prefix(system).is_some_and(|q| q.starts_with(':'))
}

impl LocalSink for Runner {
    fn deliver(&self, target: &Endpoint, _source: &Endpoint, topic: &str, payload: &Bytes) -> bool {
        match target {
            Endpoint::Function(arn) => self.deliver_message(arn, topic, payload),
            _ => false,
        }
    }

    fn has_room(&self, target: &Endpoint) -> bool {
        match target {
            Endpoint::Function(arn) => self.0.sup.borrow().has_room(arn),
            _ => true,
        }
    }
}

/// A random token (128 bits from ring's system RNG, hex).
fn new_token() -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 16];
    if ring::rand::SystemRandom::new().fill(&mut b).is_err() {
        // The RNG never fails on Linux; an empty token authorizes nothing.
        return String::new();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Copies a worker's stdout (Info) or stderr (Warn) into its function's log, line by line,
/// lines cut at [`limits::WORKER_LOG_LINE_BYTES`].
async fn pump_log<T: Read + std::os::fd::AsFd + async_io::IoSafe>(
    arn: String,
    level: log::Level,
    pipe: T,
) {
    let (region, account, name) = runtime::log_parts(&arn);
    let Ok(mut r) = Async::new(pipe) else { return };
    let write = |line: &[u8]| {
        crate::logging::user_log(
            &region,
            &account,
            &name,
            level,
            format_args!("{}", String::from_utf8_lossy(line)),
        )
    };
    let mut line: Vec<u8> = Vec::with_capacity(256);
    let mut cut = false;
    let mut chunk = [0u8; 2048];
    loop {
        let n = match r.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &b in &chunk[..n] {
            if b == b'\n' {
                if !cut || !line.is_empty() {
                    write(&line);
                }
                line.clear();
                cut = false;
            } else if line.len() < limits::WORKER_LOG_LINE_BYTES {
                line.push(b);
            } else if !cut {
                write(&line);
                line.clear();
                cut = true;
            }
        }
    }
    if !line.is_empty() {
        write(&line);
    }
}
