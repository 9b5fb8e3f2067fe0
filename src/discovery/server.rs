//! The async shell of the Discovery API: accepts on `sprig.discoveryPort`, bounds connections
//! and time, runs TLS (the broker's server certificate and device-certificate verifier, plus
//! ALPN `x-amzn-http-ca` for clients on port 443), feeds the plaintext to [`super::respond`],
//! writes the reply and closes. One request per connection.
//!
//! Bounds: [`DISCOVERY_MAX_CONNECTIONS`] at once (more are closed at accept, counted), the TLS
//! handshake within [`TLS_HANDSHAKE_TIMEOUT_SECS`], the first request byte within
//! [`DISCOVERY_FIRST_BYTE_SECS`], everything within [`DISCOVERY_REQUEST_SECS`] of accept, at
//! most [`DISCOVERY_MAX_REQUEST_BYTES`] buffered.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_executor::LocalExecutor;
use async_io::{Async, Timer};
use futures_lite::future;
use rustls::ServerConfig;

use super::{auto_connectivity, group_id_for, pem_certificates, respond, Directory, Outcome, Step};
use crate::broker::tlsconn::{self, ReadOutcome, TlsConn};
use crate::broker::ServerConfigSlot;
use crate::config::{Config, Group};
use crate::json::Value;
use crate::limits::{
    DISCOVERY_FIRST_BYTE_SECS, DISCOVERY_MAX_CONNECTIONS, DISCOVERY_MAX_REQUEST_BYTES,
    DISCOVERY_REQUEST_SECS, TLS_HANDSHAKE_TIMEOUT_SECS,
};
use crate::listen;
use crate::pki::{self, IdentitySource, ServerIdentity};

/// ALPN names offered: the Discovery API's on port 443 (guide), and plain `http/1.1` so that
/// curl and browsers, which offer it, are not refused.
const ALPN: [&[u8]; 2] = [b"x-amzn-http-ca", b"http/1.1"];

/// Counters shown in `sprig status` under `discovery`.
#[derive(Debug, Default)]
pub struct DiscoveryStats {
    pub connections: Cell<usize>,
    pub served: Cell<u64>,
    pub refused_forbidden: Cell<u64>,
    pub refused_bad_request: Cell<u64>,
    pub refused_not_found: Cell<u64>,
    pub refused_method: Cell<u64>,
    pub refused_plain_http: Cell<u64>,
    pub refused_handshake: Cell<u64>,
    pub refused_connection_limit: Cell<u64>,
    pub timed_out: Cell<u64>,
    /// The peer closed, or broke TLS, before a complete request.
    pub closed_early: Cell<u64>,
}

fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1);
}

/// Certificate id → thing name for every member of the group: its devices, its cores and
/// config.json's core.
fn members_of(config: &Config, group: &Group) -> HashMap<String, String> {
    let mut members = HashMap::new();
    for d in &group.devices {
        members.insert(d.certificate_id.clone(), d.thing_name.clone());
    }
    for c in &group.cores {
        let cert = c.certificate_arn.rsplit_once("cert/").map(|x| x.1);
        let thing = c.thing_arn.rsplit_once("thing/").map(|x| x.1);
        if let (Some(cert), Some(thing)) = (cert, thing) {
            members.insert(cert.to_string(), thing.to_string());
        }
    }
    if let Some(cert) = core_certificate_id(config) {
        members.insert(cert, config.core_thing.thing_name.clone());
    }
    members
}

/// The endpoint's state: what replies tell, and the counters.
pub struct Discovery {
    pub port: u16,
    directory: RefCell<Directory>,
    /// `Some(ggMqttPort)` when `sprig.connectivity` is empty: the connectivity list follows the
    /// interface addresses, re-read for each reply.
    auto_port: Option<u16>,
    pub stats: DiscoveryStats,
}

impl Discovery {
    /// The endpoint for `config` and `group`, with the CA(s) that certify `identity`: the group
    /// CA (`certs/group-ca.pem`) when it exists, else the chain of a configured
    /// `MQTTServerCertificate` above its leaf (or the leaf itself when it stands alone).
    pub fn new(config: &Config, group: &Group, identity: &ServerIdentity) -> Discovery {
        let thing_name = &config.core_thing.thing_name;
        if let Some(id) = group.group_id.as_deref() {
            if group_id_for(Some(id), thing_name) != id {
                log::warn!("group.json GroupId {id:?} is not safe in a file name; devices get a derived id instead");
            }
        }
        let auto_port = config
            .sprig
            .connectivity
            .is_empty()
            .then_some(config.core_thing.gg_mqtt_port);
        let directory = Directory {
            group_id: group_id_for(group.group_id.as_deref(), thing_name),
            core_thing_arn: config.core_thing.thing_arn.clone(),
            connectivity: config.sprig.connectivity.clone(),
            cas: cas_for(config, identity),
            members: members_of(config, group),
        };
        Discovery {
            port: config.sprig.discovery_port,
            directory: RefCell::new(directory),
            auto_port,
            stats: DiscoveryStats::default(),
        }
    }

    /// A deployment was applied (or `sprig reset` emptied the group): devices added are
    /// served from now on, devices removed are refused (403), the group id follows group.json.
    /// The CA, connectivity and server certificate do not depend on the group and are kept.
    pub fn set_group(&self, config: &Config, group: &Group) {
        let mut d = self.directory.borrow_mut();
        d.members = members_of(config, group);
        d.group_id = group_id_for(group.group_id.as_deref(), &config.core_thing.thing_name);
        log::info!(
            "discovery: group applied: {} members (group id {})",
            d.members.len(),
            d.group_id
        );
    }

    /// The `discovery` section of `sprig status`.
    pub fn status(&self) -> Value {
        let s = &self.stats;
        let n = |c: &Cell<u64>| Value::Int(i64::try_from(c.get()).unwrap_or(i64::MAX));
        let fields = [
            ("served", &s.served),
            ("refused_forbidden", &s.refused_forbidden),
            ("refused_bad_request", &s.refused_bad_request),
            ("refused_not_found", &s.refused_not_found),
            ("refused_method", &s.refused_method),
            ("refused_plain_http", &s.refused_plain_http),
            ("refused_handshake", &s.refused_handshake),
            ("refused_connection_limit", &s.refused_connection_limit),
            ("timed_out", &s.timed_out),
            ("closed_early", &s.closed_early),
        ];
        let mut v = vec![
            ("port".to_string(), Value::Int(i64::from(self.port))),
            (
                "open_connections".to_string(),
                Value::Int(s.connections.get() as i64),
            ),
        ];
        v.extend(fields.iter().map(|(k, c)| (k.to_string(), n(c))));
        Value::Object(v)
    }

    fn count(&self, outcome: Outcome) {
        let s = &self.stats;
        bump(match outcome {
            Outcome::Served => &s.served,
            Outcome::BadRequest => &s.refused_bad_request,
            Outcome::Forbidden => &s.refused_forbidden,
            Outcome::NotFound => &s.refused_not_found,
            Outcome::BadMethod => &s.refused_method,
        });
    }

    /// The reply step for `buf`, with the connectivity refreshed when it follows the interfaces.
    fn step(&self, buf: &[u8], cert_id: &str) -> Step {
        if let Some(port) = self.auto_port {
            match pki::interface_addrs() {
                Ok(addrs) => {
                    self.directory.borrow_mut().connectivity = auto_connectivity(&addrs, port)
                }
                Err(e) => log::warn!(
                    "discovery: cannot list interface addresses ({e}); replying with the last list"
                ),
            }
        }
        respond(buf, cert_id, &self.directory.borrow())
    }
}

/// The certificate id of the core's own IoT certificate, when its file is readable.
fn core_certificate_id(config: &Config) -> Option<String> {
    let path = match &config.crypto {
        Some(c) => c.iot_certificate.as_ref()?.certificate_path.clone()?,
        None => config.core_thing.cert_path.clone()?,
    };
    let chain = pki::load_cert_chain(&path).ok()?;
    Some(pki::certificate_id(chain.first()?.as_ref()))
}

fn cas_for(config: &Config, identity: &ServerIdentity) -> Vec<String> {
    let group_ca = config.root.join("certs").join("group-ca.pem");
    let (path, skip_leaf) = match identity.source {
        IdentitySource::GroupCa => (group_ca, false),
        IdentitySource::Configured if group_ca.exists() => (group_ca, false),
        IdentitySource::Configured => (identity.cert_path.clone(), true),
    };
    // Small local file (certificates are capped by the PEM reader at start-up already).
    let certs = match std::fs::read_to_string(&path) {
        Ok(text) => pem_certificates(&text),
        Err(e) => {
            log::warn!(
                "discovery: cannot read {} ({e}); replies carry no CA",
                path.display()
            );
            return Vec::new();
        }
    };
    if skip_leaf && certs.len() > 1 {
        certs[1..].to_vec()
    } else {
        certs
    }
}

/// The discovery TLS config: the broker's (same certificate, same device verifier) with ALPN.
pub fn tls_config(broker: &Arc<ServerConfig>) -> Arc<ServerConfig> {
    let mut c = (**broker).clone();
    c.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Arc::new(c)
}

/// Accepts discovery connections forever, each served by its own task on `ex`.
pub async fn run(
    d: Rc<Discovery>,
    ex: &LocalExecutor<'_>,
    listener: Async<TcpListener>,
    tls: ServerConfigSlot,
) {
    let bound = listen::Bound {
        what: "discovery",
        target: module_path!(),
        open: &d.stats.connections,
        max: DISCOVERY_MAX_CONNECTIONS,
        refused: &d.stats.refused_connection_limit,
    };
    loop {
        let (sock, peer) = listen::accept(&listener, &bound).await;
        let config = tls.borrow().clone();
        ex.spawn(serve(d.clone(), sock, peer, config)).detach();
    }
}

/// Decrements the open-connection count however the task ends.
struct Open(Rc<Discovery>);

impl Drop for Open {
    fn drop(&mut self) {
        let c = &self.0.stats.connections;
        c.set(c.get().saturating_sub(1));
    }
}

async fn serve(
    d: Rc<Discovery>,
    sock: Async<TcpStream>,
    peer: SocketAddr,
    config: Arc<ServerConfig>,
) {
    let _open = Open(d.clone());
    let deadline = Instant::now() + Duration::from_secs(DISCOVERY_REQUEST_SECS);
    let done = future::or(
        async { Some(conversation(&d, sock, peer, config).await) },
        async {
            Timer::at(deadline).await;
            None
        },
    )
    .await;
    match done {
        Some(Ok(())) => {}
        Some(Err(e)) => log::info!("{peer}: {e}"),
        None => {
            bump(&d.stats.timed_out);
            log::info!("{peer}: no complete request within {DISCOVERY_REQUEST_SECS} s: closed");
        }
    }
}

/// What ended a conversation early, for the log line.
type Ended = String;

async fn conversation(
    d: &Discovery,
    sock: Async<TcpStream>,
    peer: SocketAddr,
    config: Arc<ServerConfig>,
) -> Result<(), Ended> {
    // A TLS connection starts with a handshake record (0x16); anything else is most likely
    // plain HTTP sent to the HTTPS port: say so in the clear, once, and close.
    // Waiting for that byte counts against the handshake's time.
    let first = future::or(first_byte(&sock), async {
        Timer::after(Duration::from_secs(TLS_HANDSHAKE_TIMEOUT_SECS)).await;
        Err(format!(
            "nothing sent within {TLS_HANDSHAKE_TIMEOUT_SECS} s of connecting: closed"
        ))
    })
    .await
    .inspect_err(|_| bump(&d.stats.refused_handshake))?;
    if first != 0x16 {
        bump(&d.stats.refused_plain_http);
        log::warn!("{peer}: refused: not TLS (plain HTTP on the HTTPS port?)");
        // Best effort, never waits: a fresh socket takes this small reply at once.
        let _ = sock.get_ref().write(&super::plain_http_reply());
        let _ = sock.get_ref().shutdown(std::net::Shutdown::Write);
        return Ok(());
    }
    let mut tls = TlsConn::new(config).map_err(|e| format!("cannot start TLS: {e}"))?;
    let mut timer = Timer::never();
    if let Err(why) =
        tlsconn::handshake(&mut tls, &sock, &mut timer, TLS_HANDSHAKE_TIMEOUT_SECS).await
    {
        bump(&d.stats.refused_handshake);
        return Err(why);
    }
    let Some(cert_id) = tls.peer_certificate_id() else {
        bump(&d.stats.refused_handshake);
        return Err("no client certificate".into());
    };
    let first_byte_by = Instant::now() + Duration::from_secs(DISCOVERY_FIRST_BYTE_SECS);
    let mut buf: Vec<u8> = Vec::with_capacity(512);
    // The request may have come with the client's last handshake flight.
    tls.process_buffered(Some(&mut |d: &[u8]| take_bounded(&mut buf, d)))
        .map_err(|e| e.to_string())?;
    let reply = loop {
        if let Step::Reply(r) = d.step(&buf, &cert_id) {
            break r;
        }
        let woke = if buf.is_empty() {
            future::or(async { sock.readable().await.map(|_| true) }, async {
                Timer::at(first_byte_by).await;
                Ok(false)
            })
            .await
        } else {
            sock.readable().await.map(|_| true)
        };
        if !woke.map_err(|e| e.to_string())? {
            bump(&d.stats.timed_out);
            return Err(format!(
                "no request within {DISCOVERY_FIRST_BYTE_SECS} s of the handshake"
            ));
        }
        let mut take = |d: &[u8]| take_bounded(&mut buf, d);
        let budget = DISCOVERY_MAX_REQUEST_BYTES;
        match tls.read_from(&mut sock.get_ref(), budget, Some(&mut take)) {
            Ok(ReadOutcome::Closed) => {
                bump(&d.stats.closed_early);
                return Err("closed before a complete request".into());
            }
            Ok(_) => {}
            Err(e) => {
                bump(&d.stats.closed_early);
                return Err(e.to_string());
            }
        }
    };
    d.count(reply.outcome);
    if reply.outcome == Outcome::Served {
        log::info!("{peer}: {}", reply.reason);
    } else {
        log::warn!("{peer}: {} {}", reply.status, reply.reason);
    }
    tls.write(&reply.to_bytes()).map_err(|e| e.to_string())?;
    tls.close_notify();
    while !tls
        .flush_to(&mut sock.get_ref())
        .map_err(|e| e.to_string())?
    {
        sock.writable().await.map_err(|e| e.to_string())?;
    }
    let _ = sock.get_ref().shutdown(std::net::Shutdown::Write);
    Ok(())
}

/// The first byte the peer sent, left in the socket.
async fn first_byte(sock: &Async<TcpStream>) -> Result<u8, Ended> {
    let mut first = [0u8; 1];
    loop {
        sock.readable().await.map_err(|e| e.to_string())?;
        match sock.get_ref().peek(&mut first) {
            Ok(0) => return Err("closed before sending anything".into()),
            Ok(_) => return Ok(first[0]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Appends decrypted bytes to `buf`, never past [`DISCOVERY_MAX_REQUEST_BYTES`] (a full buffer
/// without a complete request is answered 400; what comes after is not kept).
fn take_bounded(buf: &mut Vec<u8>, data: &[u8]) -> Result<(), crate::broker::session::Close> {
    let room = DISCOVERY_MAX_REQUEST_BYTES.saturating_sub(buf.len());
    buf.extend_from_slice(&data[..data.len().min(room)]);
    Ok(())
}
