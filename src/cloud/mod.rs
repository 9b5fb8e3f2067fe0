//! The link to AWS IoT Core (or any MQTT 3.1.1 broker that authenticates clients by
//! certificate): seed-A §4 and §6, issue 4.
//!
//! * [`link`]: one MQTT session, sans-IO (CONNECT/SUBSCRIBE/PUBLISH/PUBACK/PINGREQ, timeouts),
//!   and the reconnect [`link::Backoff`].
//! * [`tls`]: rustls client config (client certificate, server verified against caPath, ALPN
//!   `x-amzn-mqtt-ca` on port 443) and TLS over any byte stream.
//! * [`proxy`]: `coreThing.networkProxy`: noProxyAddresses, HTTP CONNECT with Basic auth.
//! * [`task`]: the async driver, one task per connection, reconnecting forever.
//! * [`dns`]: a stub resolver (hosts file, then UDP to resolv.conf's name servers), because
//!   `getaddrinfo` would block the one thread for its whole timeout when the uplink is down.
//!
//! Connections: `<thing>-c00` sends the spool and carries the first
//! [`CLOUD_MAX_SUBSCRIPTIONS_PER_CONNECTION`] cloud-sourced filters; `-c01`, `-c02`, ... carry
//! the next ones. The bare `<thing>` id is reserved for the control (deployment) connection,
//! which sprig does not open yet. With persistent subscriptions every `-cNN` connection uses
//! cleanSession=0 (Greengrass opens a separate connection for the persistent session; sprig has
//! no system components that need a clean one).
//!
//! The seam with the rest of the core: the dispatcher calls [`Cloud::publish`] for every
//! message routed to Target `cloud` (it goes through the spool, QoS 1 upstream), and the cloud
//! link hands every message from the cloud to the [`InboundSink`] the app gives it (which puts
//! it in the work queue with source `cloud` and says whether that worked).

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use bytes::Bytes;

use crate::config::{Config, Endpoint, Group, NetworkProxy, SpoolStorage, Spooler};
use crate::limits::{CLOUD_MAX_CONNECTIONS, CLOUD_MAX_SUBSCRIPTIONS_PER_CONNECTION};
use crate::spool::{PushError, Spool, SpoolStats};

pub mod dns;
pub mod link;
pub mod proxy;
pub(crate) mod task;
pub mod tls;

/// Where cloud messages go: the app's work queue. `deliver` returns `false` when the message
/// was not queued (queue full); a QoS 1 message is then not acknowledged to the cloud.
pub trait InboundSink {
    fn deliver(&self, topic: &str, payload: Bytes) -> bool;
}

impl<F: Fn(&str, Bytes) -> bool> InboundSink for F {
    fn deliver(&self, topic: &str, payload: Bytes) -> bool {
        self(topic, payload)
    }
}

/// Everything the cloud link needs, taken from config.json and group.json.
#[derive(Debug, Clone)]
pub struct CloudSettings {
    pub host: String,
    pub port: u16,
    pub thing_name: String,
    pub keep_alive: u16,
    pub op_timeout: Duration,
    /// Cap on the reconnect backoff (mqttMaxConnectionRetryInterval).
    pub max_retry: Duration,
    pub proxy: Option<NetworkProxy>,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// GG_CONFIG_SUBSCRIPTION_QUALITY = AtLeastOncePersistent: cleanSession=0, QoS 1.
    pub persistent: bool,
    /// Cloud-sourced topic filters, deduplicated, in group order.
    pub filters: Vec<String>,
    /// Offer ALPN `x-amzn-mqtt-ca`. `from_config` sets it exactly when the port is 443; tests
    /// may set it on another port.
    pub alpn: bool,
    /// The control connection (AWS IoT Jobs for deployments): one connection whose client id
    /// is the bare thing name, as Greengrass uses it (see [`CloudSettings::control`]).
    pub control: bool,
}

impl CloudSettings {
    /// The settings, or `Ok(None)` when iotHost is empty or "none" (offline: no cloud task).
    pub fn from_config(cfg: &Config, group: &Group) -> Result<Option<CloudSettings>, String> {
        if !cfg.cloud_enabled() {
            return Ok(None);
        }
        let ct = &cfg.core_thing;
        let (ca, cert, key) =
            match &cfg.crypto {
                Some(c) => {
                    let p = c.iot_certificate.as_ref().ok_or(
                        "crypto.principals.IoTCertificate is required for the cloud connection",
                    )?;
                    let cert = p
                        .certificate_path
                        .clone()
                        .ok_or("crypto.principals.IoTCertificate.certificatePath is required")?;
                    (c.ca_path.clone(), cert, p.private_key_path.clone())
                }
                None => match (&ct.ca_path, &ct.cert_path, &ct.key_path) {
                    (Some(a), Some(b), Some(c)) => (a.clone(), b.clone(), c.clone()),
                    _ => return Err(
                        "coreThing.caPath, certPath and keyPath are required when crypto is absent"
                            .into(),
                    ),
                },
            };
        let mut filters: Vec<String> = Vec::new();
        for s in group
            .subscriptions
            .iter()
            .filter(|s| s.source == Endpoint::Cloud)
        {
            if !filters.contains(&s.subject) {
                filters.push(s.subject.clone());
            }
        }
        let most = CLOUD_MAX_CONNECTIONS * CLOUD_MAX_SUBSCRIPTIONS_PER_CONNECTION;
        if filters.len() > most {
            return Err(format!(
                "{} cloud-sourced subscriptions; at most {most} are supported",
                filters.len()
            ));
        }
        Ok(Some(CloudSettings {
            host: ct.iot_host.trim().to_owned(),
            port: ct.iot_mqtt_port,
            thing_name: ct.thing_name.clone(),
            keep_alive: ct.keep_alive,
            op_timeout: Duration::from_secs(u64::from(ct.mqtt_operation_timeout.max(1))),
            max_retry: Duration::from_secs(u64::from(
                cfg.mqtt_max_connection_retry_interval.max(1),
            )),
            proxy: ct.network_proxy.clone(),
            ca,
            cert,
            key,
            persistent: group.spooler.persistent_subscriptions,
            filters,
            alpn: ct.iot_mqtt_port == 443,
            control: false,
        }))
    }

    /// Settings for the control connection: the same endpoint and identity, client id
    /// `<thing>`, clean session, subscribed to `filters` only.
    pub fn control(&self, filters: Vec<String>) -> CloudSettings {
        CloudSettings {
            persistent: false,
            filters,
            control: true,
            ..self.clone()
        }
    }

    /// How many `-cNN` connections these filters need (at least one, for publishing).
    pub fn connection_count(&self) -> usize {
        self.filters
            .len()
            .div_ceil(CLOUD_MAX_SUBSCRIPTIONS_PER_CONNECTION)
            .max(1)
    }

    /// `<thing>-cNN`, or `<thing>` for the control connection.
    pub fn client_id(&self, index: usize) -> String {
        if self.control {
            return self.thing_name.clone();
        }
        format!("{}-c{index:02}", self.thing_name)
    }
}

/// The spool directory under the write directory.
pub fn spool_dir(write_dir: &Path) -> PathBuf {
    write_dir
        .join("ggc")
        .join("var")
        .join("state")
        .join("spool")
}

/// Opens the spool the group asks for. A FileSystem spool that cannot be opened is logged and
/// replaced by a Memory one: the core keeps running.
pub fn open_spool(write_dir: &Path, spooler: &Spooler) -> Spool {
    match spooler.storage {
        SpoolStorage::Memory => Spool::memory(spooler.max_size_bytes),
        SpoolStorage::FileSystem => {
            let dir = spool_dir(write_dir);
            Spool::open(&dir, spooler.max_size_bytes).unwrap_or_else(|e| {
                log::error!(
                    "spool: cannot use {} ({e}); cloud-bound messages are kept in memory only",
                    dir.display()
                );
                Spool::memory(spooler.max_size_bytes)
            })
        }
    }
}

/// State of one cloud connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    Connecting,
    Connected,
    /// Waiting before the next attempt.
    Backoff,
}

impl LinkState {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Connecting => "connecting",
            LinkState::Connected => "connected",
            LinkState::Backoff => "waiting to reconnect",
        }
    }
}

/// One connection's status.
#[derive(Debug, Clone)]
pub struct ConnStatus {
    pub client_id: String,
    pub state: LinkState,
    /// Sessions that reached CONNACK.
    pub sessions: u64,
    /// Attempts that failed or sessions that ended in error.
    pub failures: u64,
    pub last_error: String,
    /// ALPN protocol the server selected, if any.
    pub alpn: Option<String>,
}

/// What `sprig status` shows about the cloud.
#[derive(Debug, Clone)]
pub struct CloudStatus {
    pub endpoint: String,
    pub connections: Vec<ConnStatus>,
    pub spool: SpoolStats,
    pub persistent_spool: bool,
    /// Messages PUBACKed by the cloud.
    pub published: u64,
    pub inbound_delivered: u64,
    /// Cloud messages the work queue did not take.
    pub inbound_dropped: u64,
}

impl CloudStatus {
    /// `key: value` lines for `sprig status`.
    pub fn lines(&self) -> Vec<String> {
        let mut v = vec![format!("cloud.endpoint: {}", self.endpoint)];
        for c in &self.connections {
            let mut line = format!(
                "cloud.{}: {} (sessions {}, failures {})",
                c.client_id,
                c.state.as_str(),
                c.sessions,
                c.failures
            );
            if !c.last_error.is_empty() {
                line.push_str(&format!(", last error: {}", c.last_error));
            }
            v.push(line);
        }
        let s = &self.spool;
        v.push(format!(
            "cloud.spool: {} messages, {} of {} bytes ({})",
            s.messages,
            s.bytes,
            s.budget,
            if self.persistent_spool {
                "FileSystem"
            } else {
                "Memory"
            }
        ));
        v.push(format!(
            "cloud.spool.dropped: full {}, too big {}, corrupt {}, io {}, corrupt segments {}, torn tails {}",
            s.dropped_full, s.dropped_too_big, s.dropped_corrupt, s.dropped_io, s.corrupt_segments, s.torn_tails
        ));
        v.push(format!(
            "cloud.messages: published {}, received {}, received but dropped {}",
            self.published, self.inbound_delivered, self.inbound_dropped
        ));
        v
    }
}

impl crate::broker::CloudSink for Cloud {
    fn send(&self, topic: &str, payload: &Bytes) -> bool {
        self.publish(topic, payload.clone()).is_ok()
    }
}

impl CloudStatus {
    /// The `cloud` and `spool` sections of the status file (flat objects: one line each in
    /// `sprig status`).
    pub fn sections(&self) -> (crate::json::Value, crate::json::Value) {
        use crate::json::Value;
        let int = |n: u64| Value::Int(i64::try_from(n).unwrap_or(i64::MAX));
        let obj = |f: Vec<(&str, Value)>| {
            Value::Object(f.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
        };
        let up = self
            .connections
            .iter()
            .filter(|c| c.state == LinkState::Connected)
            .count();
        let state = match up {
            0 => self
                .connections
                .first()
                .map_or("offline", |c| c.state.as_str()),
            n if n == self.connections.len() => "connected",
            _ => "partly connected",
        };
        let last_error = self
            .connections
            .iter()
            .map(|c| c.last_error.as_str())
            .find(|e| !e.is_empty())
            .unwrap_or("");
        let cloud = obj(vec![
            ("state", Value::String(state.into())),
            ("endpoint", Value::String(self.endpoint.clone())),
            ("connections", int(self.connections.len() as u64)),
            ("connected", int(up as u64)),
            ("published", int(self.published)),
            ("received", int(self.inbound_delivered)),
            ("received_dropped", int(self.inbound_dropped)),
            ("last_error", Value::String(last_error.into())),
        ]);
        let s = &self.spool;
        let spool = obj(vec![
            (
                "storage",
                Value::String(
                    if self.persistent_spool {
                        "FileSystem"
                    } else {
                        "Memory"
                    }
                    .into(),
                ),
            ),
            ("messages", int(s.messages)),
            ("bytes", int(s.bytes)),
            ("budget", int(s.budget)),
            ("dropped_full", int(s.dropped_full)),
            ("dropped_too_big", int(s.dropped_too_big)),
            ("dropped_corrupt", int(s.dropped_corrupt)),
            ("dropped_io", int(s.dropped_io)),
            ("corrupt_segments", int(s.corrupt_segments)),
            ("torn_tails", int(s.torn_tails)),
        ]);
        (cloud, spool)
    }
}

/// Wakes the publishing connection when the spool gets a message. One waiter, one thread.
#[derive(Default)]
pub(crate) struct Notify {
    flag: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Notify {
    pub(crate) fn notify(&self) {
        self.flag.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    pub(crate) async fn wait(&self) {
        futures_lite::future::poll_fn(|cx| {
            if self.flag.replace(false) {
                Poll::Ready(())
            } else {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

pub(crate) struct Shared {
    pub(crate) settings: CloudSettings,
    pub(crate) spool: RefCell<Spool>,
    pub(crate) wake: Notify,
    pub(crate) conns: RefCell<Vec<ConnStatus>>,
    pub(crate) inbound: Box<dyn InboundSink>,
    pub(crate) published: Cell<u64>,
    pub(crate) inbound_delivered: Cell<u64>,
    pub(crate) inbound_dropped: Cell<u64>,
}

/// Handle on the running cloud link. Cheap to clone; lives on the executor thread.
#[derive(Clone)]
pub struct Cloud(Rc<Shared>);

impl Cloud {
    /// Spawns the connection tasks (and the spool's marker flush) on `ex`.
    pub fn start(
        ex: &async_executor::LocalExecutor<'_>,
        settings: CloudSettings,
        spool: Spool,
        inbound: Box<dyn InboundSink>,
    ) -> Cloud {
        let n = settings.connection_count();
        let conns = (0..n)
            .map(|i| ConnStatus {
                client_id: settings.client_id(i),
                state: LinkState::Connecting,
                sessions: 0,
                failures: 0,
                last_error: String::new(),
                alpn: None,
            })
            .collect();
        let shared = Rc::new(Shared {
            settings,
            spool: RefCell::new(spool),
            wake: Notify::default(),
            conns: RefCell::new(conns),
            inbound,
            published: Cell::new(0),
            inbound_delivered: Cell::new(0),
            inbound_dropped: Cell::new(0),
        });
        for i in 0..n {
            ex.spawn(task::run_connection(shared.clone(), i)).detach();
        }
        ex.spawn(task::flush_spool(shared.clone())).detach();
        Cloud(shared)
    }

    /// Queues a cloud-bound message (QoS 1 upstream). On error it is dropped and counted.
    pub fn publish(&self, topic: &str, payload: Bytes) -> Result<u64, PushError> {
        let r = self.0.spool.borrow_mut().push(topic, payload, 1);
        match &r {
            Ok(_) => self.0.wake.notify(),
            Err(e) => log::warn!("cloud: message on {topic:?} not spooled: {e}"),
        }
        r
    }

    /// Whether the first connection (`-c00`, the one that publishes) is connected now.
    pub fn connected(&self) -> bool {
        self.0
            .conns
            .borrow()
            .first()
            .is_some_and(|c| c.state == LinkState::Connected)
    }

    /// Writes the FileSystem spool's head marker now (at shutdown).
    pub fn flush(&self) {
        self.0.spool.borrow_mut().flush();
    }

    pub fn status(&self) -> CloudStatus {
        let s = &self.0.settings;
        let spool = self.0.spool.borrow();
        CloudStatus {
            endpoint: format!("{}:{}", s.host, s.port),
            connections: self.0.conns.borrow().clone(),
            spool: spool.stats(),
            persistent_spool: spool.is_persistent(),
            published: self.0.published.get(),
            inbound_delivered: self.0.inbound_delivered.get(),
            inbound_dropped: self.0.inbound_dropped.get(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let text = format!(
            r#"{{"coreThing":{{"caPath":"ca.pem","certPath":"c.pem","keyPath":"k.pem",
            "thingArn":"arn:aws:iot:us-east-1:123456789012:thing/MyCore","iotHost":"x-ats.iot.us-east-1.amazonaws.com",
            "ggHost":"greengrass-ats.iot.us-east-1.amazonaws.com"{extra}}},"runtime":{{"cgroup":{{"useSystemd":"no"}}}}}}"#
        );
        let root = Path::new("/greengrass");
        Config::parse(text.as_bytes(), root, Path::new("config.json"))
            .map(|(c, _)| c)
            .unwrap()
    }

    fn group(cloud_subs: usize, persistent: bool) -> Group {
        let subs: Vec<String> = (0..cloud_subs)
            .map(|i| format!(r#"{{"Id":"s{i}","Source":"cloud","Subject":"t/{i}/#","Target":"GGShadowService"}}"#))
            .collect();
        let quality = if persistent {
            "AtLeastOncePersistent"
        } else {
            "AtMostOnce"
        };
        let text = format!(
            r#"{{"SubscriptionDefinitionVersion":{{"Subscriptions":[{}]}},
            "FunctionDefinitionVersion":{{"Functions":[{{"Id":"sp","FunctionArn":"arn:aws:lambda:::function:GGCloudSpooler:1",
            "FunctionConfiguration":{{"Environment":{{"Variables":{{"GG_CONFIG_SUBSCRIPTION_QUALITY":"{quality}"}}}},"Executable":"spooler","Pinned":true}}}}]}}}}"#,
            subs.join(",")
        );
        Group::parse(text.as_bytes(), Path::new("group.json"))
            .map(|(g, _)| g)
            .unwrap()
    }

    #[test]
    fn alpn_exactly_on_443_and_offline_when_host_none() {
        let s = CloudSettings::from_config(&config(""), &group(0, false))
            .unwrap()
            .unwrap();
        assert_eq!((s.port, s.alpn), (8883, false));
        assert_eq!(s.ca, Path::new("/greengrass/certs/ca.pem"));
        let s = CloudSettings::from_config(&config(r#","iotMqttPort":443"#), &group(0, false))
            .unwrap()
            .unwrap();
        assert_eq!((s.port, s.alpn), (443, true));
        let mut offline = config("");
        offline.core_thing.iot_host = "none".into();
        assert!(CloudSettings::from_config(&offline, &group(0, false))
            .unwrap()
            .is_none());
    }

    #[test]
    fn client_ids_and_fifty_subscriptions_per_connection() {
        let s = CloudSettings::from_config(&config(""), &group(0, false))
            .unwrap()
            .unwrap();
        assert_eq!(
            (s.connection_count(), s.client_id(0)),
            (1, "MyCore-c00".to_string())
        );
        let s = CloudSettings::from_config(&config(""), &group(120, true))
            .unwrap()
            .unwrap();
        assert_eq!(s.filters.len(), 120);
        assert_eq!(s.connection_count(), 3);
        assert_eq!(s.client_id(2), "MyCore-c02");
        assert!(s.persistent);
    }
}
