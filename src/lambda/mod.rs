//! The Lambda supervisor, sans-IO: functions, their workers and invocations as a plain state
//! machine fed by events (invoke, a worker's get-work / result / initialized, a process exit,
//! the clock) and answering with [`Action`]s (spawn, kill, wake a waiting connection). No
//! sockets, processes or timers here: `shell.rs` does those; unit tests drive this directly.
//!
//! Worker lifecycle: `Starting` (spawned, not yet asking for work; an on-demand one is killed
//! after [`limits::WORKER_START_TIMEOUT_SECS`], a pinned one may stay in its module code) → `Idle` (its `GET /work` is waiting) → `Busy`
//! (an invocation was handed to it; killed when the function's Timeout passes, the invoker
//! gets `Unhandled`) → `Idle` again on its result → ... → `Stopping` (killed) → gone on exit.
//! Pinned functions have one worker, started with the core and restarted after an exit with
//! a backoff (1 s doubling to 10 s). On-demand functions get one worker per concurrent
//! invocation up to `runtime.maxConcurrentLimit` workers in all; idle ones are stopped after
//! [`limits::ON_DEMAND_IDLE_SECS`].

pub mod runtime;
pub mod shell;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::config::Function;
use crate::ipc::IpcError;
use crate::json::Value;
use crate::limits;

pub type WorkerId = u64;
pub type InvId = u64;

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start a worker process for function `func` (an index into [`Supervisor::functions`]);
    /// answer with [`Supervisor::spawned`] or [`Supervisor::spawn_failed`].
    Spawn { worker: WorkerId, func: usize },
    /// SIGKILL the worker's process group.
    Kill { pid: i32 },
    /// The worker's waiting `GET /work` has an invocation: call [`Supervisor::take_work`].
    WakeWorker(WorkerId),
    /// An invocation finished: its waiting `GET` result call can [`Supervisor::take_result`].
    WakeInvoker(InvId),
}

/// How a function is run, from its group entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub function: Function,
    /// Why the function cannot run (e.g. GreengrassContainer): shown in status, never started.
    pub refused: Option<String>,
}

impl Spec {
    pub fn arn(&self) -> &str {
        &self.function.arn
    }
    fn timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.function.timeout.max(1)))
    }
}

/// The ARN without its version or alias (`arn:aws:lambda:R:A:function:NAME`).
pub fn unqualified(arn: &str) -> &str {
    match arn.match_indices(':').nth(6) {
        Some((i, _)) => &arn[..i],
        None => arn,
    }
}

/// Per-function counters, for `sprig status`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counters {
    pub invocations: u64,
    pub errors: u64,
    pub timeouts: u64,
    pub restarts: u64,
    /// Invocations refused: the function's queue or the invocation budget was full.
    pub dropped: u64,
}

struct Func {
    spec: Spec,
    queue: VecDeque<InvId>,
    /// When a pinned function's next worker may start.
    restart_at: Option<Instant>,
    backoff_ms: u64,
    counters: Counters,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WState {
    /// `deadline`: on-demand workers only; a pinned function's module code may run for ever
    /// (the guide: the Timeout applies to the handler, not to a pinned function's init loop).
    Starting {
        deadline: Option<Instant>,
    },
    Idle {
        since: Instant,
    },
    Busy {
        inv: InvId,
        deadline: Instant,
    },
    Stopping,
}

struct Worker {
    func: usize,
    pid: Option<i32>,
    token: String,
    state: WState,
    /// Its `GET /work` is waiting.
    polling: bool,
    /// The invocation handed to it, not yet taken by its `GET /work`.
    delivery: Option<InvId>,
}

enum IState {
    Queued,
    Running,
    Done {
        body: Vec<u8>,
        error: Option<String>,
        at: Instant,
    },
}

struct Invocation {
    func: Option<usize>,
    payload: Vec<u8>,
    context: String,
    event: bool,
    state: IState,
}

/// What a worker's `GET /work` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: InvId,
    pub payload: Vec<u8>,
    pub context: String,
}

/// A finished invocation as its invoker sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub body: Vec<u8>,
    /// `Handled` or `Unhandled` when it failed.
    pub error: Option<String>,
}

/// The supervisor of every function of the group.
pub struct Supervisor {
    funcs: Vec<Func>,
    workers: HashMap<WorkerId, Worker>,
    invs: HashMap<InvId, Invocation>,
    inv_bytes: usize,
    max_workers: usize,
    next_worker: WorkerId,
    next_inv: InvId,
    actions: Vec<Action>,
    /// `stop_all` was called: the core is shutting down, nothing starts any more.
    stopping: bool,
    /// Invocations refused because no function has that ARN.
    pub unknown_function: u64,
}

fn unhandled(message: &str) -> (Vec<u8>, Option<String>) {
    let body = crate::json::to_string(&Value::Object(vec![(
        "errorMessage".into(),
        Value::String(message.into()),
    )]));
    (body.into_bytes(), Some("Unhandled".into()))
}

impl Supervisor {
    /// Supervises `specs`; pinned functions start at once (see [`Supervisor::take_actions`]).
    pub fn new(specs: Vec<Spec>, max_workers: usize, now: Instant) -> Supervisor {
        let mut s = Supervisor {
            funcs: Vec::new(),
            workers: HashMap::new(),
            invs: HashMap::new(),
            inv_bytes: 0,
            max_workers: max_workers.max(1),
            next_worker: 1,
            next_inv: 1,
            actions: Vec::new(),
            stopping: false,
            unknown_function: 0,
        };
        for spec in specs {
            s.add(spec, now);
        }
        s
    }

    fn add(&mut self, spec: Spec, now: Instant) {
        let pinned = spec.function.pinned && spec.refused.is_none();
        self.funcs.push(Func {
            spec,
            queue: VecDeque::new(),
            restart_at: pinned.then_some(now),
            backoff_ms: limits::PINNED_RESTART_MIN_MS,
            counters: Counters::default(),
        });
        self.tick(now);
    }

    /// The functions, in group order.
    pub fn functions(&self) -> impl Iterator<Item = &Spec> {
        self.funcs.iter().map(|f| &f.spec)
    }

    pub fn spec(&self, func: usize) -> Option<&Spec> {
        self.funcs.get(func).map(|f| &f.spec)
    }

    /// The actions produced since the last call.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// The function an invoker names: the exact ARN, else the only one with that unqualified ARN.
    pub fn find(&self, arn: &str) -> Option<usize> {
        if let Some(i) = self.funcs.iter().position(|f| f.spec.arn() == arn) {
            return Some(i);
        }
        let mut it = self
            .funcs
            .iter()
            .enumerate()
            .filter(|(_, f)| unqualified(f.spec.arn()) == arn);
        match (it.next(), it.next()) {
            (Some((i, _)), None) => Some(i),
            _ => None,
        }
    }

    /// Whether function `arn` could queue one more invocation now.
    pub fn has_room(&self, arn: &str) -> bool {
        self.find(arn).is_some_and(|fi| {
            let f = &self.funcs[fi];
            f.spec.refused.is_none()
                && f.queue.len() < limits::FUNCTION_QUEUE_DEPTH
                && self.invs.len() < limits::MAX_INVOCATIONS
        })
    }

    /// The worker holding this token, if it is alive.
    pub fn worker_for_token(&self, token: &str) -> Option<WorkerId> {
        self.workers
            .iter()
            .find(|(_, w)| w.state != WState::Stopping && !token.is_empty() && w.token == token)
            .map(|(&id, _)| id)
    }

    /// True when `token` belongs to a running worker (the stream manager's check).
    pub fn is_live_token(&self, token: &str) -> bool {
        self.worker_for_token(token).is_some()
    }

    /// The ARN of a worker's function.
    pub fn worker_arn(&self, w: WorkerId) -> Option<&str> {
        let w = self.workers.get(&w)?;
        Some(self.funcs[w.func].spec.arn())
    }

    /// Queues an invocation of `arn`. `Err` is the refusal to answer at once (unknown function,
    /// queue full for an `Event`); a RequestResponse refused for a full queue still gets an id,
    /// whose result is `Unhandled` (as the lifecycle asks).
    pub fn invoke(
        &mut self,
        arn: &str,
        payload: Vec<u8>,
        context: String,
        event: bool,
        now: Instant,
    ) -> Result<InvId, IpcError> {
        let Some(fi) = self.find(arn) else {
            self.unknown_function += 1;
            return Err(IpcError::new(
                404,
                format!("function {arn} is not in this group's FunctionDefinitionVersion"),
            ));
        };
        self.funcs[fi].counters.invocations += 1;
        let f = &self.funcs[fi];
        let refusal = if let Some(why) = &f.spec.refused {
            Some(format!("function {} cannot run: {why}", f.spec.arn()))
        } else if f.queue.len() >= limits::FUNCTION_QUEUE_DEPTH {
            Some(format!(
                "the queue of function {} is full ({} invocations waiting)",
                f.spec.arn(),
                limits::FUNCTION_QUEUE_DEPTH
            ))
        } else if self.invs.len() >= limits::MAX_INVOCATIONS
            || self.inv_bytes + payload.len() > limits::MAX_INVOCATION_BYTES
        {
            Some("too many invocations in flight in the core".to_string())
        } else {
            None
        };
        if let Some(why) = refusal {
            self.funcs[fi].counters.dropped += 1;
            if event {
                return Err(IpcError::new(429, why));
            }
            let (body, error) = unhandled(&why);
            return Ok(self.complete(body, error, now));
        }
        let id = self.new_inv(Invocation {
            func: Some(fi),
            payload,
            context,
            event,
            state: IState::Queued,
        });
        self.funcs[fi].queue.push_back(id);
        self.pump(fi, now);
        Ok(id)
    }

    fn new_inv(&mut self, inv: Invocation) -> InvId {
        let id = self.next_inv;
        self.next_inv += 1;
        self.inv_bytes += inv.payload.len();
        self.invs.insert(id, inv);
        id
    }

    /// Records an invocation answered by the core itself (a system function such as the shadow
    /// service, or a refusal); its invoker fetches it like any result.
    pub fn complete(&mut self, body: Vec<u8>, error: Option<String>, now: Instant) -> InvId {
        let id = self.new_inv(Invocation {
            func: None,
            payload: Vec::new(),
            context: String::new(),
            event: false,
            state: IState::Done {
                body: Vec::new(),
                error: None,
                at: now,
            },
        });
        self.finish(id, body, error, now);
        id
    }

    fn finish(&mut self, id: InvId, body: Vec<u8>, error: Option<String>, now: Instant) {
        let Some(inv) = self.invs.get_mut(&id) else {
            return;
        };
        if let Some(fi) = inv.func {
            if error.is_some() {
                self.funcs[fi].counters.errors += 1;
            }
        }
        self.inv_bytes = self.inv_bytes.saturating_sub(inv.payload.len());
        inv.payload = Vec::new();
        if inv.event {
            self.invs.remove(&id);
            return;
        }
        self.inv_bytes += body.len();
        inv.state = IState::Done {
            body,
            error,
            at: now,
        };
        self.actions.push(Action::WakeInvoker(id));
    }

    /// The result of a finished invocation (removed: a result is fetched once). `Err` when the
    /// id is unknown (never issued, already fetched, or expired).
    pub fn take_result(&mut self, id: InvId) -> Result<Option<Outcome>, IpcError> {
        match self.invs.get(&id) {
            None => Err(IpcError::new(
                404,
                format!("no invocation {id} (unknown, already fetched or expired)"),
            )),
            Some(Invocation {
                state: IState::Done { .. },
                ..
            }) => {
                let Some(Invocation {
                    state: IState::Done { body, error, .. },
                    ..
                }) = self.invs.remove(&id)
                else {
                    unreachable!()
                };
                self.inv_bytes = self.inv_bytes.saturating_sub(body.len());
                Ok(Some(Outcome { body, error }))
            }
            Some(_) => Ok(None),
        }
    }

    /// Hands queued invocations to idle, polling workers; starts on-demand workers for the rest.
    fn pump(&mut self, fi: usize, now: Instant) {
        loop {
            if self.funcs[fi].queue.is_empty() {
                return;
            }
            let idle = self
                .workers
                .iter()
                .find(|(_, w)| w.func == fi && w.polling && matches!(w.state, WState::Idle { .. }));
            let Some((&wid, _)) = idle else { break };
            let Some(inv) = self.funcs[fi].queue.pop_front() else {
                return;
            };
            let deadline = now + self.funcs[fi].spec.timeout();
            let w = self.workers.get_mut(&wid).expect("worker");
            w.state = WState::Busy { inv, deadline };
            w.polling = false;
            w.delivery = Some(inv);
            if let Some(i) = self.invs.get_mut(&inv) {
                i.state = IState::Running;
            }
            self.actions.push(Action::WakeWorker(wid));
        }
        let f = &self.funcs[fi];
        if f.spec.function.pinned || f.spec.refused.is_some() {
            return;
        }
        let starting = self
            .workers
            .values()
            .filter(|w| w.func == fi && matches!(w.state, WState::Starting { .. }))
            .count();
        let want = f.queue.len().saturating_sub(starting);
        for _ in 0..want {
            if self.workers.len() >= self.max_workers {
                self.evict_idle(fi);
                break;
            }
            self.spawn(fi, now);
        }
    }

    /// All worker slots are taken and `fi` waits: stop the longest-idle on-demand worker of
    /// another function (its exit frees the slot and pumps the waiting queues).
    fn evict_idle(&mut self, fi: usize) {
        let stopping = self.workers.values().any(|w| w.state == WState::Stopping);
        if stopping {
            return; // a slot is already on its way
        }
        let victim = self
            .workers
            .values_mut()
            .filter(|w| w.func != fi && !self.funcs[w.func].spec.function.pinned)
            .filter_map(|w| match w.state {
                WState::Idle { since } => Some((since, w)),
                _ => None,
            })
            .min_by_key(|(since, _)| *since)
            .map(|(_, w)| w);
        if let Some(w) = victim {
            w.state = WState::Stopping;
            if let Some(pid) = w.pid {
                self.actions.push(Action::Kill { pid });
            }
        }
    }

    fn spawn(&mut self, fi: usize, now: Instant) {
        if self.stopping {
            return;
        }
        let id = self.next_worker;
        self.next_worker += 1;
        self.workers.insert(
            id,
            Worker {
                func: fi,
                pid: None,
                token: String::new(),
                state: WState::Starting {
                    deadline: (!self.funcs[fi].spec.function.pinned)
                        .then(|| now + Duration::from_secs(limits::WORKER_START_TIMEOUT_SECS)),
                },
                polling: false,
                delivery: None,
            },
        );
        self.actions.push(Action::Spawn {
            worker: id,
            func: fi,
        });
    }

    /// The shell started the worker's process with `token` in its environment.
    pub fn spawned(&mut self, w: WorkerId, pid: i32, token: String) {
        if let Some(w) = self.workers.get_mut(&w) {
            w.pid = Some(pid);
            w.token = token;
        }
    }

    /// The shell could not start the worker (e.g. no python3): treated like an exit.
    pub fn spawn_failed(&mut self, w: WorkerId, now: Instant) {
        self.remove_worker(w, "could not be started", now);
    }

    /// A worker's `GET /work`: its next invocation, or None (the call waits for
    /// [`Action::WakeWorker`] and asks again).
    pub fn take_work(&mut self, wid: WorkerId, now: Instant) -> Option<Delivery> {
        let w = self.workers.get_mut(&wid)?;
        if let Some(inv) = w.delivery.take() {
            let i = self.invs.get(&inv)?;
            return Some(Delivery {
                id: inv,
                payload: i.payload.clone(),
                context: i.context.clone(),
            });
        }
        match w.state {
            WState::Stopping => return None,
            WState::Busy { .. } => {
                // It asks again without posting a result: the old one stays pending until
                // its timeout; no new work meanwhile.
                return None;
            }
            WState::Starting { .. } => w.state = WState::Idle { since: now },
            WState::Idle { .. } => {}
        }
        if !w.polling {
            w.polling = true;
            w.state = WState::Idle { since: now };
        }
        let fi = w.func;
        self.pump(fi, now);
        let w = self.workers.get_mut(&wid)?;
        let inv = w.delivery.take()?;
        let i = self.invs.get(&inv)?;
        Some(Delivery {
            id: inv,
            payload: i.payload.clone(),
            context: i.context.clone(),
        })
    }

    /// The worker's `GET /work` connection went away while waiting.
    pub fn stop_polling(&mut self, wid: WorkerId) {
        if let Some(w) = self.workers.get_mut(&wid) {
            w.polling = false;
        }
    }

    /// A worker posts the result of `inv` (`error` = `Handled` when its handler raised).
    pub fn post_result(
        &mut self,
        wid: WorkerId,
        inv: InvId,
        body: Vec<u8>,
        error: Option<String>,
        now: Instant,
    ) -> Result<(), IpcError> {
        let Some(w) = self.workers.get_mut(&wid) else {
            return Err(IpcError::new(401, "not a live worker"));
        };
        match w.state {
            WState::Busy { inv: i, .. } if i == inv => {}
            _ => {
                return Err(IpcError::new(
                    400,
                    format!(
                        "invocation {inv} is not running on this worker (timed out or never given)"
                    ),
                ))
            }
        }
        w.state = WState::Idle { since: now };
        let fi = w.func;
        self.funcs[fi].backoff_ms = limits::PINNED_RESTART_MIN_MS;
        self.finish(inv, body, error, now);
        Ok(())
    }

    /// A worker's `PUT /initialized`. A failed start stops it (the function restarts if pinned).
    pub fn initialized(&mut self, wid: WorkerId, success: bool) {
        if success {
            return;
        }
        if let Some(pid) = self.workers.get(&wid).and_then(|w| w.pid) {
            self.actions.push(Action::Kill { pid });
        }
        if let Some(w) = self.workers.get_mut(&wid) {
            w.state = WState::Stopping;
        }
    }

    /// A worker process ended (reaped). Returns the function index and whether it was ours.
    pub fn exited(&mut self, pid: i32, now: Instant) -> Option<usize> {
        let wid = self
            .workers
            .iter()
            .find(|(_, w)| w.pid == Some(pid))
            .map(|(&id, _)| id)?;
        let fi = self.workers[&wid].func;
        self.remove_worker(wid, "exited", now);
        Some(fi)
    }

    fn remove_worker(&mut self, wid: WorkerId, why: &str, now: Instant) {
        let Some(w) = self.workers.remove(&wid) else {
            return;
        };
        let fi = w.func;
        if let WState::Busy { inv, .. } = w.state {
            let msg = format!(
                "the worker of {} {why} during the invocation",
                self.funcs[fi].spec.arn()
            );
            let (body, error) = unhandled(&msg);
            self.finish(inv, body, error, now);
        }
        let f = &mut self.funcs[fi];
        if f.spec.function.pinned && f.spec.refused.is_none() && !self.stopping {
            f.counters.restarts += 1;
            f.restart_at = Some(now + Duration::from_millis(f.backoff_ms));
            f.backoff_ms = (f.backoff_ms * 2).min(limits::PINNED_RESTART_MAX_MS);
        }
        // A slot is free: every function waiting for a worker gets its chance, this one first.
        self.pump(fi, now);
        for other in 0..self.funcs.len() {
            if other != fi && !self.funcs[other].queue.is_empty() {
                self.pump(other, now);
            }
        }
    }

    /// Advances the clock: invocation timeouts, start timeouts, idle on-demand workers, pinned
    /// restarts, expired results.
    pub fn tick(&mut self, now: Instant) {
        let mut kills = Vec::new();
        for w in self.workers.values_mut() {
            match w.state {
                WState::Busy { inv, deadline } if now >= deadline => {
                    self.funcs[w.func].counters.timeouts += 1;
                    kills.push((w.pid, Some(inv), w.func));
                    w.state = WState::Stopping;
                }
                WState::Starting {
                    deadline: Some(deadline),
                } if now >= deadline => {
                    kills.push((w.pid, None, w.func));
                    w.state = WState::Stopping;
                }
                WState::Idle { since }
                    if !self.funcs[w.func].spec.function.pinned
                        && now.duration_since(since)
                            >= Duration::from_secs(limits::ON_DEMAND_IDLE_SECS) =>
                {
                    kills.push((w.pid, None, w.func));
                    w.state = WState::Stopping;
                }
                _ => {}
            }
        }
        for (pid, inv, fi) in kills {
            if let Some(pid) = pid {
                self.actions.push(Action::Kill { pid });
            }
            if let Some(inv) = inv {
                let msg = format!(
                    "function {} timed out after {} s",
                    self.funcs[fi].spec.arn(),
                    self.funcs[fi].spec.function.timeout
                );
                let (body, error) = unhandled(&msg);
                self.finish(inv, body, error, now);
            }
        }
        for fi in 0..self.funcs.len() {
            let due = self.funcs[fi].restart_at.is_some_and(|t| now >= t);
            let running = self.workers.values().any(|w| w.func == fi);
            if due && !running && self.workers.len() < self.max_workers {
                self.funcs[fi].restart_at = None;
                self.spawn(fi, now);
            }
        }
        let keep = Duration::from_secs(limits::RESULT_KEEP_SECS);
        let expired: Vec<InvId> = self
            .invs
            .iter()
            .filter(|(_, i)| matches!(i.state, IState::Done { at, .. } if now.duration_since(at) >= keep))
            .map(|(&id, _)| id)
            .collect();
        for id in expired {
            let _ = self.take_result(id);
        }
    }

    /// The earliest instant [`Supervisor::tick`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let idle = Duration::from_secs(limits::ON_DEMAND_IDLE_SECS);
        let workers = self.workers.values().filter_map(|w| match w.state {
            WState::Busy { deadline, .. }
            | WState::Starting {
                deadline: Some(deadline),
            } => Some(deadline),
            WState::Idle { since } if !self.funcs[w.func].spec.function.pinned => {
                Some(since + idle)
            }
            _ => None,
        });
        // A restart waits for the old worker's exit and for a free worker slot; both arrive
        // as events, so they are no deadline (else the clock would spin on a past instant).
        let full = self.workers.len() >= self.max_workers;
        let restarts = self.funcs.iter().enumerate().filter_map(|(fi, f)| {
            let waiting = full || self.workers.values().any(|w| w.func == fi);
            f.restart_at.filter(|_| !waiting)
        });
        let keep = Duration::from_secs(limits::RESULT_KEEP_SECS);
        let results = self.invs.values().filter_map(|i| match i.state {
            IState::Done { at, .. } => Some(at + keep),
            _ => None,
        });
        workers.chain(restarts).chain(results).min()
    }

    /// Every worker's pid (for shutdown), and marks them stopping.
    pub fn stop_all(&mut self) -> Vec<i32> {
        self.stopping = true;
        for f in &mut self.funcs {
            f.restart_at = None;
        }
        self.workers
            .values_mut()
            .filter_map(|w| {
                w.state = WState::Stopping;
                w.pid
            })
            .collect()
    }

    /// Hot deployment: functions whose configuration changed are stopped and started again
    /// (pinned) or on the next invocation (on-demand); unchanged ones keep running; removed
    /// ones stop; new ones start.
    pub fn apply(&mut self, specs: Vec<Spec>, now: Instant) {
        let mut old: Vec<Option<Func>> = std::mem::take(&mut self.funcs)
            .into_iter()
            .map(Some)
            .collect();
        let mut remap: HashMap<usize, usize> = HashMap::new();
        for spec in specs {
            let same = old
                .iter()
                .position(|f| f.as_ref().is_some_and(|f| f.spec == spec));
            match same.and_then(|i| old[i].take().map(|f| (i, f))) {
                Some((i, f)) => {
                    remap.insert(i, self.funcs.len());
                    self.funcs.push(f);
                }
                None => self.add(spec, now),
            }
        }
        let remap_inv: Vec<(InvId, Option<usize>)> = self
            .invs
            .iter()
            .map(|(&id, i)| (id, i.func.and_then(|f| remap.get(&f).copied())))
            .collect();
        for (id, f) in remap_inv {
            if let Some(i) = self.invs.get_mut(&id) {
                i.func = f;
            }
        }
        // Workers of changed or removed functions stop; their invocations fail.
        let ids: Vec<WorkerId> = self.workers.keys().copied().collect();
        for wid in ids {
            let w = self.workers.get_mut(&wid).expect("worker");
            match remap.get(&w.func) {
                Some(&n) => w.func = n,
                None => {
                    if let Some(pid) = w.pid {
                        self.actions.push(Action::Kill { pid });
                    }
                    if let WState::Busy { inv, .. } = w.state {
                        let (body, error) = unhandled("the function was redeployed");
                        self.finish(inv, body, error, now);
                    }
                    self.workers.remove(&wid);
                }
            }
        }
        for f in old.into_iter().flatten() {
            for inv in f.queue {
                let (body, error) = unhandled("the function was removed or redeployed");
                self.finish(inv, body, error, now);
            }
        }
        self.tick(now);
    }

    /// Stops every worker of `arn` now (its code changed on disk); a pinned function starts
    /// again at once, an on-demand one on its next invocation. Returns false for an unknown ARN.
    pub fn restart(&mut self, arn: &str, now: Instant) -> bool {
        let Some(fi) = self.find(arn) else {
            return false;
        };
        let ids: Vec<WorkerId> = self
            .workers
            .iter()
            .filter(|(_, w)| w.func == fi)
            .map(|(&id, _)| id)
            .collect();
        for wid in ids {
            let Some(w) = self.workers.remove(&wid) else {
                continue;
            };
            if let Some(pid) = w.pid {
                self.actions.push(Action::Kill { pid });
            }
            if let WState::Busy { inv, .. } = w.state {
                let (body, error) = unhandled("the function was redeployed");
                self.finish(inv, body, error, now);
            }
        }
        let f = &mut self.funcs[fi];
        if f.spec.function.pinned && f.spec.refused.is_none() {
            f.restart_at = Some(now);
            f.backoff_ms = limits::PINNED_RESTART_MIN_MS;
        }
        self.tick(now);
        true
    }

    /// Per-function state for `sprig status`.
    pub fn status(&self) -> Value {
        let int = |n: u64| Value::Int(n.min(i64::MAX as u64) as i64);
        let list = self
            .funcs
            .iter()
            .enumerate()
            .map(|(fi, f)| {
                let ws: Vec<&Worker> = self.workers.values().filter(|w| w.func == fi).collect();
                let busy = ws
                    .iter()
                    .filter(|w| matches!(w.state, WState::Busy { .. }))
                    .count();
                let state = if let Some(r) = &f.spec.refused {
                    format!("refused: {r}")
                } else if ws.is_empty() {
                    if f.restart_at.is_some() {
                        "restarting".into()
                    } else {
                        "stopped".into()
                    }
                } else if busy > 0 {
                    "busy".into()
                } else if ws
                    .iter()
                    .all(|w| matches!(w.state, WState::Starting { .. }))
                {
                    "starting".into()
                } else {
                    "running".into()
                };
                let c = &f.counters;
                Value::Object(vec![
                    ("arn".into(), Value::String(f.spec.arn().into())),
                    (
                        "kind".into(),
                        Value::String(
                            if f.spec.function.pinned {
                                "pinned"
                            } else {
                                "on-demand"
                            }
                            .into(),
                        ),
                    ),
                    ("state".into(), Value::String(state)),
                    ("workers".into(), int(ws.len() as u64)),
                    ("busy".into(), int(busy as u64)),
                    ("queued".into(), int(f.queue.len() as u64)),
                    ("invocations".into(), int(c.invocations)),
                    ("errors".into(), int(c.errors)),
                    ("timeouts".into(), int(c.timeouts)),
                    ("restarts".into(), int(c.restarts)),
                    ("dropped".into(), int(c.dropped)),
                ])
            })
            .collect();
        Value::Array(list)
    }

    /// Counters of one function (tests, status).
    pub fn counters(&self, func: usize) -> Option<&Counters> {
        self.funcs.get(func).map(|f| &f.counters)
    }

    /// Live workers.
    pub fn worker_count(&self) -> usize {
        self.workers.len()
    }
}

#[cfg(test)]
mod tests;
