//! One device connection, the thin shell around [`super::session`]: TLS handshake (bounded by
//! a timeout), then it moves decrypted bytes into the session, the session's replies and the
//! device's outbox into TLS, and waits for whatever can happen next: socket readable or
//! writable, outbox frames, room in the work queue, the session's deadline.
//!
//! TLS is [`super::tlsconn::TlsConn`] (rustls's unbuffered API with buffers sprig owns, empty
//! while the device is idle); the handshake's deadline and the session's share one timer.
//!
//! Backpressure both ways: while the socket will not take our bytes we neither read from it nor
//! pull from its outbox (so its outbox fills and the dispatcher drops, and counts, for it
//! alone); while the session holds a PUBLISH the work queue could not take we do not read from
//! the socket (TCP and the device's in-flight window hold the rest) but keep sending its
//! outbox, and resume when the queue has room.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use async_io::{Async, Timer};
use futures_lite::future;
use rustls::ServerConfig;

use super::hub::{Hub, Outbox};
use super::session::{Broker, Close, Session, Step};
use super::tlsconn::{handshake, Fail, ReadOutcome, Sink, TlsConn};
use crate::limits;
use crate::workq::{Deferred, WorkItem};

/// Why a connection ended; logged once, counted in the hub's stats.
enum End {
    Session(Close),
    Io(io::Error),
    Replaced,
}

impl From<Close> for End {
    fn from(c: Close) -> End {
        End::Session(c)
    }
}

/// Decrements the connection count however the task ends (also when it is dropped).
struct Slot(Rc<Hub>);

impl Drop for Slot {
    fn drop(&mut self) {
        let c = &self.0.stats.connections;
        c.set(c.get().saturating_sub(1));
    }
}

/// Serves one accepted socket until it closes. The caller has counted it in `connections`.
pub async fn serve(
    hub: Rc<Hub>,
    sock: Async<TcpStream>,
    peer: SocketAddr,
    config: Arc<ServerConfig>,
) {
    let _slot = Slot(hub.clone());
    let tls = match TlsConn::new(config) {
        Ok(t) => t,
        Err(e) => {
            log::warn!("{peer}: cannot start TLS: {e}");
            return;
        }
    };
    // Everything the task keeps across its awaits lives in `c`, built before the first await:
    // the TLS state is stored once in the task's future (not once per stage).
    let mut c = Conn {
        hub: hub.clone(),
        sock,
        tls,
        peer,
        session: Session::new(String::new(), Instant::now()),
        device: None,
        timer: Timer::never(),
        timer_at: None,
    };
    let Some(cert_id) = c.handshake().await else {
        return;
    };
    c.session = Session::new(cert_id, Instant::now());
    let end = c.run().await;
    let who = c.session.thing().unwrap_or_default().to_owned();
    if let Some(ob) = c.device.take() {
        hub.unregister(&ob);
    }
    // Best effort: tell the peer we are closing (or why, after a TLS error), without waiting.
    c.tls.close_notify();
    let _ = c.flush();
    match end {
        End::Session(Close::Disconnect) => log::info!("{peer} {who}: disconnected"),
        End::Io(e) => log::info!("{peer} {who}: connection lost: {e}"),
        End::Session(Close::Malformed(why)) => {
            bump(&hub.stats.closed_malformed);
            log::warn!("{peer} {who}: closed: {why}");
        }
        End::Session(Close::KeepAlive) => {
            bump(&hub.stats.closed_keep_alive);
            log::info!("{peer} {who}: closed: silent for 1.5 × its keep-alive");
        }
        End::Session(Close::Refused(why)) => {
            bump(&hub.stats.refused_auth);
            log::warn!("{peer}: refused: {why}");
        }
        End::Replaced => {
            log::info!("{peer} {who}: closed: a new connection with the same client id took over, or a deployment removed the device")
        }
    }
}

fn bump(c: &std::cell::Cell<u64>) {
    c.set(c.get() + 1);
}

/// What woke the connection up.
enum Wake {
    Readable,
    Writable,
    Outbox,
    Room,
    Timer,
}

struct Conn {
    hub: Rc<Hub>,
    sock: Async<TcpStream>,
    tls: TlsConn,
    peer: SocketAddr,
    session: Session,
    /// Set once CONNECT was accepted.
    device: Option<Rc<Outbox>>,
    /// Fires at the handshake's deadline, then the session's (armed for `timer_at`, if set).
    timer: Timer,
    timer_at: Option<Instant>,
}

/// The session's view of the hub for one connection.
struct Port<'a> {
    hub: &'a Hub,
    peer: SocketAddr,
    device: &'a mut Option<Rc<Outbox>>,
}

impl Broker for Port<'_> {
    fn thing_for_certificate(&self, certificate_id: &str) -> Option<String> {
        self.hub.device_for_certificate(certificate_id)
    }

    fn connected(&mut self, thing: &str, certificate_id: &str) {
        let ob = Rc::new(Outbox::new(thing));
        self.hub.register(ob.clone());
        log::info!(
            "{} {}: connected (certificate {})",
            self.peer,
            thing,
            &certificate_id[..12.min(certificate_id.len())]
        );
        *self.device = Some(ob);
    }

    fn subscribe(&mut self, thing: &str, filter: &str) -> bool {
        let ok = self.hub.router.may_subscribe(thing, filter)
            && self.device.as_ref().is_some_and(|o| o.add_filter(filter));
        if !ok {
            log::info!(
                "{} {thing}: SUBSCRIBE {filter:?} refused (0x80): no subscription of the group routes it to this device",
                self.peer
            );
        }
        ok
    }

    fn unsubscribe(&mut self, filter: &str) {
        if let Some(o) = self.device.as_ref() {
            o.remove_filter(filter);
        }
    }

    fn offer(&mut self, item: WorkItem) -> Result<(), Deferred> {
        self.hub.queue.offer(item)
    }

    fn oversize(&mut self, thing: &str, len: usize) {
        bump(&self.hub.stats.dropped_oversize);
        log::warn!(
            "{} {thing}: refused a {len}-byte PUBLISH: payloads over {} bytes are not accepted",
            self.peer,
            limits::MAX_PAYLOAD_BYTES
        );
    }
}

impl Conn {
    /// The TLS handshake within its timeout; the client's certificate id, or `None` (counted
    /// and logged) when the connection must close.
    async fn handshake(&mut self) -> Option<String> {
        let (hub, peer) = (self.hub.clone(), self.peer);
        if let Err(why) = self
            .handshake_within(limits::TLS_HANDSHAKE_TIMEOUT_SECS)
            .await
        {
            bump(&hub.stats.refused_handshake);
            log::info!("{peer}: {why}");
            return None;
        }
        let id = self.tls.peer_certificate_id();
        if id.is_none() {
            bump(&hub.stats.refused_auth);
            log::info!("{peer}: refused: no client certificate");
        }
        id
    }

    /// [`handshake`] on the connection's timer (the session's first deadline re-arms it).
    async fn handshake_within(&mut self, secs: u64) -> Result<(), String> {
        self.timer_at = None;
        handshake(&mut self.tls, &self.sock, &mut self.timer, secs).await
    }

    /// Sends buffered TLS records. `Ok(true)` when everything went out.
    fn flush(&mut self) -> io::Result<bool> {
        self.tls.flush_to(&mut self.sock.get_ref())
    }

    /// Reads what the socket has (within the per-wake budget) and hands the plaintext to the
    /// session.
    fn read(&mut self) -> Result<ReadOutcome, End> {
        self.with_session_sink(|tls, mut sock, sink| {
            tls.read_from(&mut sock, limits::TLS_BYTES_PER_WAKE, sink)
        })
    }

    /// Hands plaintext rustls holds decrypted (a record that came with the client's last
    /// handshake flight) to the session.
    fn drain_plaintext(&mut self) -> Result<(), End> {
        self.with_session_sink(|tls, _, sink| tls.process_buffered(sink).map(|_| ()))
    }

    /// Runs `f` on the TLS state and the socket with a sink that feeds the session.
    fn with_session_sink<R>(
        &mut self,
        f: impl FnOnce(&mut TlsConn, &TcpStream, Sink<'_>) -> Result<R, Fail>,
    ) -> Result<R, End> {
        let Conn {
            hub,
            sock,
            tls,
            peer,
            session,
            device,
            ..
        } = self;
        let now = Instant::now();
        let mut port = Port {
            hub,
            peer: *peer,
            device,
        };
        let mut sink = |d: &[u8]| session.received(d, now, &mut port);
        f(tls, sock.get_ref(), Some(&mut sink)).map_err(end_of)
    }

    fn port(&mut self) -> (&mut Session, Port<'_>) {
        (
            &mut self.session,
            Port {
                hub: &self.hub,
                peer: self.peer,
                device: &mut self.device,
            },
        )
    }

    /// One round of the session; its replies go into TLS (also before a close: CONNACK 1).
    fn process(&mut self) -> Result<Step, End> {
        let (session, mut port) = self.port();
        let step = session.process(&mut port, Instant::now());
        if !self.session.output().is_empty() {
            let w = self.tls.write(self.session.output());
            self.session.clear_output();
            w.map_err(End::Io)?;
        }
        Ok(step?)
    }

    async fn run(&mut self) -> End {
        // The client's first packets may have come in the same read as its last handshake
        // flight: rustls holds them decrypted and the socket will not wake us for them.
        if let Err(end) = self.drain_plaintext() {
            return end;
        }
        let mut closing = false;
        loop {
            // 1. Parse what we have, within the per-wake budget, unless the socket is backed up
            //    or a held message still meets a closed work-queue gate.
            let mut more_frames = false;
            let may_offer = !self.session.is_paused() || self.hub.queue.is_open();
            if !closing && !self.tls.wants_write() && may_offer {
                match self.process() {
                    Ok(Step::More) => more_frames = true,
                    Ok(Step::Idle | Step::Paused) => {}
                    Ok(Step::Close) => closing = true,
                    Err(end) => {
                        let _ = self.flush();
                        return end;
                    }
                }
            }
            if let Some(ob) = &self.device {
                if ob.replaced.get() {
                    return End::Replaced;
                }
                // 2. Move outbox frames into TLS, only when TLS has flushed everything (bounds
                //    what rustls buffers to one batch).
                if !self.tls.wants_write() {
                    let mut batch = 0;
                    while batch < limits::TLS_BYTES_PER_WAKE {
                        let Some(f) = ob.take() else { break };
                        batch += f.len();
                        if let Err(e) = self.tls.write(&f) {
                            return End::Io(e);
                        }
                    }
                }
            }
            // 3. Send.
            let flushed = match self.flush() {
                Ok(f) => f,
                Err(e) => return End::Io(e),
            };
            if closing && flushed {
                return End::Session(Close::Disconnect);
            }
            if more_frames && flushed {
                future::yield_now().await;
                continue;
            }
            // 4. Wait for the next thing to do.
            let has_frames = self.device.as_ref().is_some_and(|o| o.has_frames());
            if flushed && has_frames {
                future::yield_now().await;
                continue;
            }
            let wake = self.wait(flushed, closing).await;
            match wake {
                Wake::Readable => match self.read() {
                    // The peer may have sent its last packets together with the close
                    // (mosquitto_pub: PUBLISH, DISCONNECT, close_notify): the session has
                    // them; handle them first.
                    Ok(ReadOutcome::Closed) => return self.finish().await,
                    Ok(ReadOutcome::Data | ReadOutcome::WouldBlock) => {}
                    Err(end) => return end,
                },
                Wake::Writable | Wake::Outbox | Wake::Room => {}
                Wake::Timer => {
                    // The timer may have been armed for an earlier deadline; `wait` re-arms it.
                    if let Some(close) = self.session.expired(Instant::now()) {
                        return End::Session(close);
                    }
                }
            }
        }
    }

    /// Waits for the next thing to do: the socket readable (unless flushing, closing or
    /// paused), writable (while flushing), outbox frames, room in the work queue (while
    /// paused), the session's deadline. One hand-written poll keeps the task's future small
    /// and reuses one timer: it is re-armed only when the deadline moves earlier or it fired
    /// (keep-alive deadlines move later with every packet; re-registering per packet cost a
    /// reactor insert and remove per message).
    async fn wait(&mut self, flushed: bool, closing: bool) -> Wake {
        let paused = self.session.is_paused();
        let deadline = self.session.deadline();
        let Conn {
            hub,
            sock,
            device,
            timer,
            timer_at,
            ..
        } = self;
        std::future::poll_fn(|cx| {
            // Errors show up again on the read or write that follows.
            if flushed && !closing && !paused && sock.poll_readable(cx).is_ready() {
                return Poll::Ready(Wake::Readable);
            }
            if !flushed && sock.poll_writable(cx).is_ready() {
                return Poll::Ready(Wake::Writable);
            }
            if let Some(o) = device.as_ref().filter(|_| flushed) {
                if o.wake.poll_notified(cx).is_ready() {
                    return Poll::Ready(Wake::Outbox);
                }
            }
            if paused && !closing && hub.queue.poll_room(cx).is_ready() {
                return Poll::Ready(Wake::Room);
            }
            if let Some(d) = deadline {
                if timer_at.is_none_or(|t| d < t) {
                    timer.set_at(d);
                    *timer_at = Some(d);
                }
                if Pin::new(&mut *timer).poll(cx).is_ready() {
                    *timer_at = None;
                    return Poll::Ready(Wake::Timer);
                }
            }
            Poll::Pending
        })
        .await
    }

    /// The peer closed: hands its last packets to the session, waiting for room in the work
    /// queue if need be (nothing it sent is dropped for a full queue).
    async fn finish(&mut self) -> End {
        if let Err(end) = self.drain_plaintext() {
            return end;
        }
        loop {
            match self.process() {
                Ok(Step::More) => {}
                Ok(Step::Paused) => self.hub.queue.room().await,
                Ok(Step::Idle | Step::Close) => return End::Session(Close::Disconnect),
                Err(end) => return end,
            }
        }
    }
}

/// How a TLS failure ends the connection.
fn end_of(f: Fail) -> End {
    match f {
        Fail::Sink(c) => End::Session(c),
        Fail::Tls(e) => End::Session(Close::Malformed(format!("TLS error: {e}"))),
        Fail::Io(e) if e.kind() == io::ErrorKind::InvalidData => {
            End::Session(Close::Malformed(format!("TLS error: {e}")))
        }
        Fail::Io(e) => End::Io(e),
    }
}
