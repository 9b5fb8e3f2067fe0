//! The stream manager's async shell: the 127.0.0.1 listener, one task per client connection
//! driving a [`Session`], the TTL timer, the HTTP exporter and the `streams` status section.

use std::cell::{Cell, RefCell};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use async_executor::LocalExecutor;
use async_io::{Async, Timer};
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};

use super::session::{Ctx, Session};
use super::store::Store;
use super::{export, now_ms, Settings};
use crate::json::Value;
use crate::limits;

/// Whether a token is a live Lambda worker's (`AWS_CONTAINER_AUTHORIZATION_TOKEN`). The Lambda
/// runner provides it; until then nothing is live.
pub type TokenCheck = Rc<dyn Fn(&str) -> bool>;

/// Wakes every task waiting for appends (parked reads, the exporter). One waker per waiter
/// id, so the list is bounded by the number of connections plus the exporter.
#[derive(Default)]
pub struct Changed {
    version: Cell<u64>,
    wakers: RefCell<Vec<(u64, Waker)>>,
}

impl Changed {
    pub fn notify(&self) {
        self.version.set(self.version.get() + 1);
        for (_, w) in self.wakers.borrow_mut().drain(..) {
            w.wake();
        }
    }

    pub fn version(&self) -> u64 {
        self.version.get()
    }

    /// Completes once the version differs from `seen`.
    pub async fn wait(&self, who: u64, seen: u64) {
        std::future::poll_fn(|cx| {
            if self.version.get() != seen {
                return Poll::Ready(());
            }
            let mut w = self.wakers.borrow_mut();
            match w.iter_mut().find(|e| e.0 == who) {
                Some(e) => e.1 = cx.waker().clone(),
                None => w.push((who, cx.waker().clone())),
            }
            Poll::Pending
        })
        .await
    }

    fn forget(&self, who: u64) {
        self.wakers.borrow_mut().retain(|e| e.0 != who);
    }
}

#[derive(Default)]
struct Stats {
    connections: Cell<usize>,
    accepted: Cell<u64>,
    refused_limit: Cell<u64>,
    closed_bad: Cell<u64>,
    next_id: Cell<u64>,
}

pub(super) struct Inner {
    pub(super) settings: Settings,
    pub(super) store: RefCell<Store>,
    pub(super) changed: Changed,
    token_ok: TokenCheck,
    stats: Stats,
    listener: Async<TcpListener>,
}

/// The running stream manager (cheap to clone).
#[derive(Clone)]
pub struct StreamManager(Rc<Inner>);

/// Binds 127.0.0.1:port and opens the store. Errors name the setting to change.
pub fn start(settings: Settings, token_ok: TokenCheck) -> Result<StreamManager, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], settings.port));
    let listener = Async::<TcpListener>::bind(addr).map_err(|e| {
        format!(
            "stream manager: cannot listen on {addr} (GGStreamManager STREAM_MANAGER_SERVER_PORT): {e}"
        )
    })?;
    let store = Store::open(&settings.root, settings.max_bytes);
    log::info!(target: "GGStreamManager",
        "stream manager on {addr}: store {} ({} streams, {} of {} bytes), client authentication {}",
        settings.root.display(),
        store.names().len(),
        store.usage().0,
        store.usage().1,
        if settings.authenticate { "on" } else { "off" }
    );
    Ok(StreamManager(Rc::new(Inner {
        settings,
        store: RefCell::new(store),
        changed: Changed::default(),
        token_ok,
        stats: Stats::default(),
        listener,
    })))
}

impl StreamManager {
    /// Serves clients, expires old data and exports until cancelled.
    pub async fn run(&self, ex: &LocalExecutor<'_>) {
        let _ttl = ex.spawn(ttl_loop(self.0.clone()));
        let _export = ex.spawn(export::run(self.0.clone()));
        let me = &self.0;
        let bound = crate::listen::Bound {
            what: "stream manager",
            target: "GGStreamManager",
            open: &me.stats.connections,
            max: limits::STREAM_MAX_CONNECTIONS,
            refused: &me.stats.refused_limit,
        };
        loop {
            let (sock, peer) = crate::listen::accept(&me.listener, &bound).await;
            let _ = sock.get_ref().set_nodelay(true);
            me.stats.accepted.set(me.stats.accepted.get() + 1);
            let inner = me.clone();
            ex.spawn(async move {
                let id = inner.stats.next_id.get();
                inner.stats.next_id.set(id + 1);
                if let Err(e) = serve(&inner, sock, id).await {
                    inner.stats.closed_bad.set(inner.stats.closed_bad.get() + 1);
                    log::warn!(target: "GGStreamManager",
                        "stream manager: client {peer} closed: {e}"
                    );
                }
                inner.changed.forget(id);
                inner
                    .stats
                    .connections
                    .set(inner.stats.connections.get() - 1);
            })
            .detach();
        }
    }

    /// The `stream_exports` section of `sprig status`: one line per HTTP export,
    /// `STREAM/ID: exported N, next M, pending P[, error E]`.
    pub fn export_status(&self) -> Value {
        let store = self.0.store.borrow();
        let lines = store
            .http_exports()
            .into_iter()
            .filter_map(|(stream, h)| {
                let p = store.export_progress(&stream, &h.identifier)?;
                let mut line = format!(
                    "{stream}/{}: exported {}, next {}, pending {}",
                    h.identifier,
                    p.messages,
                    p.next,
                    store.available(&stream, p.next)
                );
                if let Some(e) = &p.error {
                    line.push_str(&format!(", error {e}"));
                }
                Some(Value::String(line))
            })
            .collect();
        Value::Array(lines)
    }

    /// The `streams` section of `sprig status`.
    pub fn status(&self) -> Value {
        let me = &self.0;
        let store = me.store.borrow();
        let (used, max) = store.usage();
        let c = store.counters;
        let int = |v: u64| Value::Int(v as i64);
        Value::Object(vec![
            ("port".into(), Value::Int(i64::from(me.settings.port))),
            ("streams".into(), int(store.names().len() as u64)),
            ("bytes".into(), int(used)),
            ("max_bytes".into(), int(max)),
            ("clients".into(), int(me.stats.connections.get() as u64)),
            ("accepted".into(), int(me.stats.accepted.get())),
            (
                "refused_client_limit".into(),
                int(me.stats.refused_limit.get()),
            ),
            ("closed_bad_input".into(), int(me.stats.closed_bad.get())),
            ("appended".into(), int(c.appended)),
            ("rejected_stream_full".into(), int(c.rejected_stream_full)),
            ("rejected_store_full".into(), int(c.rejected_store_full)),
            ("overwritten".into(), int(c.overwritten)),
            ("expired".into(), int(c.expired)),
            ("recovered_cut_bytes".into(), int(c.recovered_cut_bytes)),
            ("io_errors".into(), int(c.io_errors)),
        ])
    }
}

enum Event {
    Read(std::io::Result<usize>),
    Changed,
    Deadline,
    /// The session has buffered work (replies were bounded); no read.
    Pending,
}

async fn serve(inner: &Rc<Inner>, mut sock: Async<TcpStream>, id: u64) -> Result<(), String> {
    let mut session = Session::new();
    let mut rbuf = vec![0u8; 16 * 1024];
    let mut out = Vec::new();
    loop {
        let seen = inner.changed.version();
        let deadline = session.next_deadline();
        let parked = session.has_parked();
        let ev = if session.pending() {
            Event::Pending
        } else {
            let read = async { Event::Read(sock.read(&mut rbuf).await) };
            let changed = async {
                if parked {
                    inner.changed.wait(id, seen).await;
                    Event::Changed
                } else {
                    future::pending().await
                }
            };
            let timer = async {
                match deadline {
                    Some(d) => {
                        Timer::after(Duration::from_millis(d.saturating_sub(now_ms()))).await;
                        Event::Deadline
                    }
                    None => future::pending().await,
                }
            };
            future::or(read, future::or(changed, timer)).await
        };
        let data = match ev {
            Event::Read(Ok(0)) => return Ok(()),
            Event::Read(Err(e)) => return Err(e.to_string()),
            Event::Read(Ok(n)) => &rbuf[..n],
            Event::Changed | Event::Deadline | Event::Pending => &[][..],
        };
        let (res, appended) = {
            let mut store = inner.store.borrow_mut();
            let mut ctx = Ctx {
                store: &mut store,
                now_ms: now_ms(),
                token_ok: &*inner.token_ok,
                authenticate: inner.settings.authenticate,
                appended: false,
            };
            let res = session.input(data, &mut ctx, &mut out);
            session.tick(&mut ctx, &mut out);
            (res, ctx.appended)
        };
        if appended {
            inner.changed.notify();
        }
        if !out.is_empty() {
            sock.write_all(&out).await.map_err(|e| e.to_string())?;
            out.clear();
        }
        res?;
    }
}

async fn ttl_loop(inner: Rc<Inner>) {
    loop {
        Timer::after(Duration::from_secs(limits::STREAM_TTL_CHECK_SECS)).await;
        inner.store.borrow_mut().expire(now_ms());
    }
}
