//! The local MQTT broker for group devices: MQTT 3.1.1 over TLS 1.2/1.3 on `ggMqttPort`,
//! devices authenticated by certificate id + client id, messages routed along the group's
//! subscriptions through the one work queue.
//!
//! * [`tls`]: server config, the device-certificate verifier, the rustls-over-async-io driver.
//! * [`hub`]: shared state (router, queue, outboxes, counters), the dispatcher, the
//!   [`hub::CloudSink`] seam for the cloud link.
//! * [`session`]: one device's MQTT session rules, sans-IO (CONNECT auth, SUBSCRIBE grants,
//!   PUBLISH intake and when to PUBACK, keep-alive).
//! * [`conn`]: one connection's life, the thin TLS shell around a session.
//!
//! What sprig does with MQTT features Greengrass lacks: the retain flag is ignored (the message
//! is routed like any other, nothing is stored, deliveries carry retain = 0); `cleanSession = 0`
//! is accepted but no session is kept (CONNACK session-present is always 0, filters are
//! forgotten on disconnect); a Will is ignored; QoS 2 closes the connection; SUBSCRIBE grants
//! QoS 0 (local delivery is QoS 0, one attempt).

pub mod conn;
pub mod hub;
pub mod session;
pub mod tls;
pub mod tlsconn;

use std::cell::RefCell;
use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use async_executor::LocalExecutor;
use async_io::{Async, Timer};
use rustls::ServerConfig;

pub use hub::{run_dispatcher, BrokerStats, CloudSink, Hub, LocalSink};

/// The TLS server config new connections use; replace it to rotate the server certificate
/// (connections already open keep theirs, so no device is dropped).
pub type ServerConfigSlot = Rc<RefCell<Arc<ServerConfig>>>;

/// Binds the broker's listening socket (`0.0.0.0:port`).
pub fn bind(port: u16) -> std::io::Result<Async<TcpListener>> {
    Async::<TcpListener>::bind(SocketAddr::from(([0, 0, 0, 0], port)))
}

/// The next connection on `listener`; on EMFILE and friends it logs (naming `what`) and backs
/// off instead of spinning.
pub async fn accept(
    listener: &Async<TcpListener>,
    what: &str,
) -> (Async<std::net::TcpStream>, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(x) => return x,
            Err(e) => {
                log::warn!("{what}: accepting a connection failed: {e}");
                Timer::after(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Accepts device connections forever, each served by its own task on `ex`. Connections over
/// `hub.max_connections` are closed at accept, with a log line, and counted.
pub async fn run_listener(
    hub: Rc<Hub>,
    ex: &LocalExecutor<'_>,
    listener: Async<TcpListener>,
    tls: ServerConfigSlot,
) {
    loop {
        let (sock, peer) = accept(&listener, "broker").await;
        let stats = &hub.stats;
        if stats.connections.get() >= hub.max_connections {
            stats
                .refused_connection_limit
                .set(stats.refused_connection_limit.get() + 1);
            log::warn!(
                "{peer}: refused: {} connections open, the limit (sprig.maxConnections) is {}",
                stats.connections.get(),
                hub.max_connections
            );
            continue; // `sock` dropped: closed
        }
        let _ = sock.get_ref().set_nodelay(true);
        stats.connections.set(stats.connections.get() + 1);
        stats.accepted_total.set(stats.accepted_total.get() + 1);
        let config = tls.borrow().clone();
        ex.spawn(conn::serve(hub.clone(), sock, peer, config))
            .detach();
    }
}
