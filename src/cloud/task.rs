//! The async side of the cloud link: connect (TCP, optional proxy tunnel, TLS), run a
//! [`Link`] session over it, and reconnect with backoff forever.

use std::io;
use std::net::TcpStream;
use std::path::Path;
use std::pin::pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

use async_io::{Async, Timer};
use futures_lite::future;

use super::link::{Backoff, Inbound, Link, LinkConfig};
use super::tls::{self, TlsWire, Wire};
use super::{proxy, CloudSettings, LinkState, Shared};
use crate::limits::{
    CLOUD_BACKOFF_BASE_MS, CLOUD_CONNECT_TIMEOUT_SECS, CLOUD_MAX_SUBSCRIPTIONS_PER_CONNECTION,
    SPOOL_HEAD_FLUSH_MS,
};

type Tcp = Async<TcpStream>;

/// The connection, direct or through an HTTP(S) proxy tunnel.
pub(crate) enum Conn {
    // Boxed: rustls connections are over a kilobyte; keep the task future small.
    Direct(Box<TlsWire<Tcp>>),
    ViaTlsProxy(Box<TlsWire<TlsWire<Tcp>>>),
}

impl Conn {
    fn alpn(&self) -> Option<String> {
        let a = match self {
            Conn::Direct(t) => t.alpn(),
            Conn::ViaTlsProxy(t) => t.alpn(),
        };
        a.map(|a| String::from_utf8_lossy(a).into_owned())
    }
}

impl Wire for Conn {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Direct(t) => t.read(buf).await,
            Conn::ViaTlsProxy(t) => t.read(buf).await,
        }
    }
    async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Conn::Direct(t) => t.write_all(buf).await,
            Conn::ViaTlsProxy(t) => t.write_all(buf).await,
        }
    }
}

fn random_u32() -> u32 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 4];
    // On failure the jitter is just zero; the backoff still grows.
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    u32::from_le_bytes(b)
}

/// One `-cNN` connection, forever.
pub(super) async fn run_connection(shared: Rc<Shared>, index: usize) {
    let s = &shared.settings;
    let client_id = s.client_id(index);
    let first = index * CLOUD_MAX_SUBSCRIPTIONS_PER_CONNECTION;
    let filters = s
        .filters
        .iter()
        .skip(first)
        .take(CLOUD_MAX_SUBSCRIPTIONS_PER_CONNECTION)
        .cloned()
        .collect();
    let cfg = LinkConfig {
        client_id: client_id.clone(),
        keep_alive: s.keep_alive,
        clean_session: !s.persistent,
        filters,
        sub_qos: u8::from(s.persistent),
        publisher: index == 0,
        op_timeout: s.op_timeout,
    };
    let mut backoff = Backoff::new(Duration::from_millis(CLOUD_BACKOFF_BASE_MS), s.max_retry);
    loop {
        set_state(&shared, index, LinkState::Connecting, None);
        let attempt = future::or(connect(s), async {
            Timer::after(Duration::from_secs(CLOUD_CONNECT_TIMEOUT_SECS)).await;
            Err(format!(
                "no connection within {CLOUD_CONNECT_TIMEOUT_SECS} s"
            ))
        })
        .await;
        let error = match attempt {
            Ok(mut conn) => {
                if let Some(c) = shared.conns.borrow_mut().get_mut(index) {
                    c.alpn = conn.alpn();
                }
                let (reached, why) = session(&shared, index, &mut conn, cfg.clone()).await;
                if reached {
                    backoff.reset();
                }
                log::warn!(
                    "cloud: {client_id}: session with {}:{} ended: {why}",
                    s.host,
                    s.port
                );
                why
            }
            Err(why) => why,
        };
        let delay = backoff.next_delay(random_u32());
        log::error!(
            "cloud: {client_id}: cannot use {}:{}: {error}; retrying in {} ms",
            s.host,
            s.port,
            delay.as_millis()
        );
        set_state(&shared, index, LinkState::Backoff, Some(error));
        Timer::after(delay).await;
    }
}

fn set_state(shared: &Shared, index: usize, state: LinkState, error: Option<String>) {
    if let Some(c) = shared.conns.borrow_mut().get_mut(index) {
        c.state = state;
        if state == LinkState::Connected {
            c.sessions += 1;
        }
        if let Some(e) = error {
            c.failures += 1;
            c.last_error = e;
        }
    }
}

enum Event {
    Read(io::Result<usize>),
    Wake,
}

/// Runs one MQTT session. Returns whether it reached CONNACK, and why it ended.
async fn session(
    shared: &Shared,
    index: usize,
    conn: &mut Conn,
    cfg: LinkConfig,
) -> (bool, String) {
    let publisher = cfg.publisher;
    let mut link = Link::new(cfg, Instant::now());
    let mut buf = vec![0u8; 16 * 1024];
    let mut connected = false;
    loop {
        let now = Instant::now();
        let deadline = match link.poll(now, &mut shared.spool.borrow_mut()) {
            Ok(d) => d,
            Err(e) => return (connected, e.to_string()),
        };
        let out = link.take_output();
        if !out.is_empty() {
            if let Err(e) = write_watched(conn, &out, &mut link, shared, deadline).await {
                return (connected, e);
            }
        }
        let wait_wake = async {
            if publisher && connected {
                shared.wake.wait().await;
            } else {
                future::pending::<()>().await;
            }
            Event::Wake
        };
        let wait_timer = async {
            Timer::at(deadline).await;
            Event::Wake
        };
        let event = future::or(
            async { Event::Read(conn.read(&mut buf).await) },
            future::or(wait_wake, wait_timer),
        )
        .await;
        let n = match event {
            Event::Wake => continue,
            Event::Read(Ok(0)) => return (connected, "the broker closed the connection".into()),
            Event::Read(Ok(n)) => n,
            Event::Read(Err(e)) => return (connected, format!("read failed: {e}")),
        };
        let before = link.acked;
        let mut deliver = |m: Inbound<'_>| {
            let ok = shared.inbound.deliver(m.topic, m.payload);
            let c = if ok {
                &shared.inbound_delivered
            } else {
                &shared.inbound_dropped
            };
            c.set(c.get() + 1);
            if !ok {
                log::warn!(
                    "cloud: message on {:?} dropped: the work queue is full",
                    m.topic
                );
            }
            ok
        };
        let res = link.received(&buf[..n], Instant::now(), &mut deliver);
        link.apply_acks(&mut shared.spool.borrow_mut());
        shared
            .published
            .set(shared.published.get() + (link.acked - before));
        if let Err(e) = res {
            return (connected, e.to_string());
        }
        if !connected && link.is_connected() {
            connected = true;
            set_state(shared, index, LinkState::Connected, None);
            log::info!(
                "cloud: {} connected to {}:{}",
                shared.settings.client_id(index),
                shared.settings.host,
                shared.settings.port
            );
        }
    }
}

/// Writes `out`, still running the link's timers while the socket will not take it: a broker
/// that stops reading (zero window) would otherwise hold the session, and with it every
/// PUBACK/PINGRESP timeout, forever instead of ending it for a reconnect.
async fn write_watched(
    conn: &mut Conn,
    out: &[u8],
    link: &mut Link,
    shared: &Shared,
    mut deadline: Instant,
) -> Result<(), String> {
    let mut write = pin!(conn.write_all(out));
    loop {
        let timer = async {
            Timer::at(deadline).await;
            None
        };
        match future::or(async { Some(write.as_mut().await) }, timer).await {
            Some(done) => return done.map_err(|e| format!("write failed: {e}")),
            // New output (a PINGREQ) waits for this write; its timeout runs from now.
            None => {
                deadline = link
                    .poll(Instant::now(), &mut shared.spool.borrow_mut())
                    .map_err(|e| e.to_string())?;
            }
        }
    }
}

/// Writes the FileSystem spool's head marker now and then.
pub(super) async fn flush_spool(shared: Rc<Shared>) {
    loop {
        Timer::after(Duration::from_millis(SPOOL_HEAD_FLUSH_MS)).await;
        shared.spool.borrow_mut().flush();
    }
}

/// TCP to `host:port`, resolved without blocking ([`super::dns`]).
async fn tcp_connect(host: &str, port: u16) -> Result<Tcp, String> {
    let addrs = super::dns::resolve(host, port).await?;
    let mut last = format!("{host} has no address");
    for addr in addrs {
        match Async::<TcpStream>::connect(addr).await {
            Ok(s) => {
                let _ = s.get_ref().set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = format!("cannot connect to {addr}: {e}"),
        }
    }
    Err(last)
}

/// Opens the MQTT TLS connection, through the proxy unless noProxyAddresses exempts the host.
async fn connect(s: &CloudSettings) -> Result<Conn, String> {
    let cfg = tls::mqtt_client_config(&s.ca, &s.cert, &s.key, s.alpn)?;
    tls_connect(&s.host, s.port, cfg, s.proxy.as_ref(), &s.ca).await
}

/// TCP and TLS (`cfg`) to `host:port`, through `proxy` unless noProxyAddresses exempts the
/// host; an `https://` proxy is verified against `ca` plus the system bundle. Also used for
/// HTTPS downloads (crate::deploy::fetch).
pub(crate) async fn tls_connect(
    host: &str,
    port: u16,
    cfg: std::sync::Arc<rustls::ClientConfig>,
    proxy: Option<&crate::config::NetworkProxy>,
    ca: &Path,
) -> Result<Conn, String> {
    let tls_err = |e: io::Error| format!("TLS with {host}: {e}");
    let Some(p) = proxy.filter(|p| !proxy::bypass(p, host)) else {
        let tcp = tcp_connect(host, port).await?;
        return TlsWire::connect(tcp, cfg, host)
            .await
            .map(|t| Conn::Direct(Box::new(t)))
            .map_err(tls_err);
    };
    let mut tcp = tcp_connect(&p.host, p.port)
        .await
        .map_err(|e| format!("proxy {}: {e}", p.url))?;
    if p.tls {
        let pcfg = tls::proxy_client_config(&tls::with_system_bundle(ca))?;
        let mut ptls = TlsWire::connect(tcp, pcfg, &p.host)
            .await
            .map_err(|e| format!("TLS with proxy {}: {e}", p.url))?;
        tunnel(&mut ptls, p, host, port).await?;
        TlsWire::connect(ptls, cfg, host)
            .await
            .map(|t| Conn::ViaTlsProxy(Box::new(t)))
            .map_err(tls_err)
    } else {
        tunnel(&mut tcp, p, host, port).await?;
        TlsWire::connect(tcp, cfg, host)
            .await
            .map(|t| Conn::Direct(Box::new(t)))
            .map_err(tls_err)
    }
}

/// HTTP CONNECT through the proxy.
async fn tunnel<W: Wire>(
    w: &mut W,
    p: &crate::config::NetworkProxy,
    host: &str,
    port: u16,
) -> Result<(), String> {
    let ctx = |e: String| format!("proxy {}: {e}", p.url);
    w.write_all(&proxy::connect_request(p, host, port))
        .await
        .map_err(|e| ctx(e.to_string()))?;
    let mut reply = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        let n = w.read(&mut chunk).await.map_err(|e| ctx(e.to_string()))?;
        if n == 0 {
            return Err(ctx("closed before answering CONNECT".into()));
        }
        reply.extend_from_slice(&chunk[..n]);
        match proxy::parse_connect_reply(&reply).map_err(ctx)? {
            None => continue,
            Some(len) if len == reply.len() => return Ok(()),
            Some(_) => return Err(ctx("sent data before the tunnel was used".into())),
        }
    }
}
