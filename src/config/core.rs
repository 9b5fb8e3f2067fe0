//! config.json (seed-A §3): the core's identity, endpoints, runtime limits and crypto paths.

use std::path::{Path, PathBuf};

use super::validate::{read_bounded, Obj, Report};
use super::ConfigError;
use crate::json::Node;
use crate::limits;

/// config.json, with every default filled in and every path resolved to an absolute path.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The read-only Greengrass root this was loaded from (`-r ROOT`, default `/greengrass`).
    pub root: PathBuf,
    pub core_thing: CoreThing,
    pub runtime: Runtime,
    /// `managedRespawn` (bool, or the strings "true"/"false").
    pub managed_respawn: bool,
    /// `crypto`; when present the legacy coreThing caPath/certPath/keyPath are ignored.
    pub crypto: Option<Crypto>,
    /// `writeDirectory`, or `root` when absent.
    pub write_dir: PathBuf,
    /// `mqttMaxConnectionRetryInterval` in seconds (coreThing wins over top level).
    pub mqtt_max_connection_retry_interval: u32,
    /// `pidFileDirectory` (default `/var/run`).
    pub pid_file_directory: PathBuf,
    /// sprig's own extensions, under the top-level key `sprig`.
    pub sprig: SprigExtensions,
    /// `system.shadowSyncTimeout`, seconds (default 5).
    pub shadow_sync_timeout: u32,
}

/// `coreThing`.
#[derive(Debug, Clone, PartialEq)]
pub struct CoreThing {
    /// Legacy paths, already resolved against `ROOT/certs`.
    pub ca_path: Option<PathBuf>,
    pub cert_path: Option<PathBuf>,
    pub key_path: Option<PathBuf>,
    pub thing_arn: String,
    /// The text after `thing/` in `thing_arn`.
    pub thing_name: String,
    /// Empty or `"none"` means offline: no cloud link.
    pub iot_host: String,
    pub gg_host: String,
    pub iot_mqtt_port: u16,
    pub iot_http_port: u16,
    pub gg_mqtt_port: u16,
    pub gg_http_port: u16,
    pub gg_daemon_port: u16,
    /// Seconds, 30–1200.
    pub keep_alive: u16,
    pub network_proxy: Option<NetworkProxy>,
    /// Seconds, at least 5.
    pub mqtt_operation_timeout: u32,
    /// Milliseconds, 500–5000.
    pub system_component_auth_timeout: u32,
    /// `coreClientId` (1–128 characters): the cloud MQTT client id; None means the thing name.
    pub core_client_id: Option<String>,
}

/// `coreThing.networkProxy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkProxy {
    /// `proxy.url` as written.
    pub url: String,
    /// `true` for an https:// proxy.
    pub tls: bool,
    pub host: String,
    /// 80 for http, 443 for https when the URL has none.
    pub port: u16,
    /// userinfo in the URL wins over `proxy.username`/`proxy.password`.
    pub username: Option<String>,
    pub password: Option<String>,
    pub no_proxy_addresses: Vec<String>,
}

/// `runtime`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runtime {
    pub max_work_item_count: u32,
    pub max_concurrent_limit: u32,
    pub lru_size: u32,
    /// Milliseconds.
    pub post_start_health_check_timeout: u64,
    pub allow_functions_to_run_as_root: bool,
    /// `cgroup.useSystemd`: "yes"/"no", None when absent.
    pub cgroup_use_systemd: Option<bool>,
}

/// `crypto`, with `file:///` URIs turned into paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crypto {
    pub ca_path: PathBuf,
    pub iot_certificate: Option<Principal>,
    pub mqtt_server_certificate: Option<Principal>,
    pub secrets_manager: Option<Principal>,
    /// A `PKCS11` block was present: parsed, reported as unsupported.
    pub pkcs11: bool,
}

/// One entry of `crypto.principals`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub private_key_path: PathBuf,
    pub certificate_path: Option<PathBuf>,
}

/// Keys under the top-level `sprig` object: settings Greengrass does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SprigExtensions {
    /// Simultaneous local device connections (default [`crate::limits::DEFAULT_MAX_CONNECTIONS`]).
    pub max_connections: usize,
    /// Validity of the self-issued local MQTT server certificate, days (7–30, default 7).
    pub server_cert_validity_days: u32,
    /// Stream manager: bytes all streams together may hold, on disk and in memory
    /// (`streamStoreMaxBytes`, default [`crate::limits::DEFAULT_STREAM_STORE_MAX_BYTES`]).
    pub stream_store_max_bytes: u64,
    /// `discoveryPort`: the local Discovery API's HTTPS port (default
    /// [`crate::limits::DEFAULT_DISCOVERY_PORT`]; 0 disables it).
    pub discovery_port: u16,
    /// `true` when config.json names `discoveryPort`: then a busy port stops start-up; the
    /// default port, when busy, only leaves discovery off (with a warning).
    pub discovery_port_set: bool,
    /// `connectivity`: what discovery tells devices about this core; empty means every
    /// non-loopback interface address with `ggMqttPort`.
    pub connectivity: Vec<Connectivity>,
}

/// One `sprig.connectivity` entry (the Greengrass `ConnectivityInfo` a device dials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connectivity {
    /// `id` (optional; default `MANUAL_<hostAddress>_<n>`, n counting from 0): unique.
    pub id: String,
    /// `hostAddress`: an IP address or DNS name; also put in the server certificate's SANs.
    pub host_address: String,
    /// `portNumber` (1–65535).
    pub port_number: u16,
    /// `metadata` (optional, at most [`crate::limits::DISCOVERY_MAX_METADATA_BYTES`] bytes).
    pub metadata: String,
}

impl Config {
    /// Parses config.json bytes. `root` resolves legacy paths; `file` is named in errors.
    /// Returns the config and its warnings, or every error found.
    pub fn parse(
        bytes: &[u8],
        root: &Path,
        file: &Path,
    ) -> Result<(Config, Vec<ConfigError>), Vec<ConfigError>> {
        let mut r = Report::new(file);
        let Some(doc) = r.parse_json(bytes, limits::MAX_CONFIG_JSON_BYTES) else {
            return Err(r.errors);
        };
        let config = read_config(&mut r, doc.root(), root);
        match config {
            Some(c) if r.errors.is_empty() => Ok((c, r.warnings)),
            _ => Err(r.errors),
        }
    }

    /// Reads and parses `ROOT/config/config.json`. A file over
    /// [`limits::MAX_CONFIG_JSON_BYTES`] is refused before it is read.
    pub fn load(root: &Path) -> Result<(Config, Vec<ConfigError>), Vec<ConfigError>> {
        let path = super::config_path(root);
        match read_bounded(&path, limits::MAX_CONFIG_JSON_BYTES) {
            Ok(Some(bytes)) => Config::parse(&bytes, root, &path),
            Ok(None) => Err(vec![ConfigError {
                file: path,
                key: String::new(),
                message: "missing; sprig needs ROOT/config/config.json (see examples/conf/)".into(),
            }]),
            Err(e) => Err(vec![e]),
        }
    }

    /// `false` when `iotHost` is empty or `"none"`: the core runs without a cloud link.
    pub fn cloud_enabled(&self) -> bool {
        let h = self.core_thing.iot_host.trim();
        !(h.is_empty() || h.eq_ignore_ascii_case("none"))
    }
}

impl Config {
    /// The root CA file for the cloud link: `crypto.caPath`, else legacy `coreThing.caPath`.
    pub fn ca_file(&self) -> Option<&Path> {
        match &self.crypto {
            Some(c) => Some(&c.ca_path),
            None => self.core_thing.ca_path.as_deref(),
        }
    }

    /// The core's certificate for the cloud link (IoTCertificate, else legacy certPath).
    pub fn cert_file(&self) -> Option<&Path> {
        match &self.crypto {
            Some(c) => c
                .iot_certificate
                .as_ref()
                .and_then(|p| p.certificate_path.as_deref()),
            None => self.core_thing.cert_path.as_deref(),
        }
    }

    /// The core's private key for the cloud link (IoTCertificate, else legacy keyPath).
    pub fn key_file(&self) -> Option<&Path> {
        match &self.crypto {
            Some(c) => c
                .iot_certificate
                .as_ref()
                .map(|p| p.private_key_path.as_path()),
            None => self.core_thing.key_path.as_deref(),
        }
    }

    /// The MQTT client id for the cloud link: `coreClientId`, else the thing name.
    pub fn cloud_client_id(&self) -> &str {
        self.core_thing
            .core_client_id
            .as_deref()
            .unwrap_or(&self.core_thing.thing_name)
    }
}

fn is_offline_host(h: &str) -> bool {
    let h = h.trim();
    h.is_empty() || h.eq_ignore_ascii_case("none")
}

fn read_config(r: &mut Report, doc: Node, root: &Path) -> Option<Config> {
    let mut top = Obj::new(r, "", doc)?;
    let core_thing = match top.require(r, "coreThing") {
        Some(v) => read_core_thing(r, v, root),
        None => None,
    };
    let runtime = match top.take("runtime") {
        Some(v) => read_runtime(r, v),
        None => Some(Runtime::default()),
    };
    let managed_respawn = top.bool(r, "managedRespawn", true).unwrap_or(false);
    let crypto_value = top.take("crypto");
    let crypto = crypto_value.and_then(|v| read_crypto(r, v));
    let write_dir = top
        .abs_path(r, "writeDirectory")
        .unwrap_or_else(|| root.to_path_buf());
    let top_retry = read_retry_interval(&mut top, r);
    let pid_file_directory = top
        .abs_path(r, "pidFileDirectory")
        .unwrap_or_else(|| "/var/run".into());
    let sprig = match top.take("sprig") {
        Some(v) => read_sprig(r, v),
        None => SprigExtensions::default(),
    };
    let mut shadow_sync_timeout = limits::DEFAULT_SHADOW_SYNC_TIMEOUT_SECS;
    if let Some(mut system) = top.take("system").and_then(|v| Obj::new(r, "system", v)) {
        if let Some(t) = system.int(r, "shadowSyncTimeout", 1, 3600, "seconds", false) {
            shadow_sync_timeout = t as u32;
        }
        system.finish(r);
    }
    top.finish(r);

    let (mut core_thing, ct_retry) = core_thing?;
    for (port, key) in [
        (core_thing.gg_mqtt_port, "coreThing.ggMqttPort"),
        (core_thing.gg_daemon_port, "coreThing.ggDaemonPort"),
    ] {
        if sprig.discovery_port != 0 && sprig.discovery_port == port {
            r.error(
                "sprig.discoveryPort",
                format!(
                    "found {port}, which is {key}; pick another port (or 0 to disable discovery)"
                ),
            );
        }
    }
    let online = !is_offline_host(&core_thing.iot_host);
    if online {
        if core_thing.thing_arn.is_empty() {
            r.error(
                "coreThing.thingArn",
                "missing; required when iotHost is set (set iotHost to \"none\" to run offline)",
            );
        }
        if core_thing.gg_host.trim().is_empty() {
            r.error(
                "coreThing.ggHost",
                "missing; required when iotHost is set (set iotHost to \"none\" to run offline)",
            );
        }
        let has_files = match &crypto {
            Some(c) => c
                .iot_certificate
                .as_ref()
                .is_some_and(|p| p.certificate_path.is_some()),
            None => {
                core_thing.ca_path.is_some()
                    && core_thing.cert_path.is_some()
                    && core_thing.key_path.is_some()
            }
        };
        // An invalid crypto block has been reported already; do not pile on.
        if !has_files && (crypto_value.is_none() || crypto.is_some()) {
            let key = if crypto.is_some() {
                "crypto.principals.IoTCertificate"
            } else {
                "coreThing"
            };
            r.error(
                key,
                "The configuration file is missing the CaPath, CertPath or KeyPath.",
            );
        }
    }
    if crypto.is_some() {
        // Legacy paths are ignored when `crypto` is present (guide, config.json reference).
        core_thing.ca_path = None;
        core_thing.cert_path = None;
        core_thing.key_path = None;
    }
    let retry = ct_retry
        .or(top_retry)
        .map_or(limits::DEFAULT_MQTT_MAX_RETRY_INTERVAL_SECS, |v| v as u32);
    Some(Config {
        root: root.to_path_buf(),
        core_thing,
        runtime: runtime?,
        managed_respawn,
        crypto,
        write_dir,
        mqtt_max_connection_retry_interval: retry,
        pid_file_directory,
        sprig,
        shadow_sync_timeout,
    })
}

/// Ports AWS IoT and Greengrass listen on, for the "not a value AWS allows" warning.
fn port_warn(r: &mut Report, obj: &mut Obj, key: &str, default: u16, aws: &[u16]) -> u16 {
    let Some(p) = obj.int(r, key, 1, 65535, "", false) else {
        return default;
    };
    let p = p as u16;
    if !aws.contains(&p) {
        let allowed: Vec<String> = aws.iter().map(u16::to_string).collect();
        r.warn(
            &obj.key(key),
            format!(
                "{p} is not a port AWS uses (AWS allows {}); fine for a private broker",
                allowed.join(" or ")
            ),
        );
    }
    p
}

/// Returns coreThing and its own `mqttMaxConnectionRetryInterval`, if set.
/// `mqttMaxConnectionRetryInterval`, which the guide shows both at the top level and in
/// `coreThing` (the `coreThing` one wins).
fn read_retry_interval(o: &mut Obj, r: &mut Report) -> Option<i64> {
    o.int(
        r,
        "mqttMaxConnectionRetryInterval",
        1,
        u32::MAX as i64,
        "seconds",
        false,
    )
}

fn read_core_thing(r: &mut Report, v: Node, root: &Path) -> Option<(CoreThing, Option<i64>)> {
    let mut o = Obj::new(r, "coreThing", v)?;
    let certs = root.join("certs");
    let ca_path = o.string(r, "caPath").map(|p| certs.join(p));
    let cert_path = o.string(r, "certPath").map(|p| certs.join(p));
    let key_path = o.string(r, "keyPath").map(|p| certs.join(p));
    let iot_host = match o.take("iotHost") {
        Some(v) if v.as_str().is_some() => v.as_str().unwrap_or_default().to_string(),
        Some(other) => {
            r.error(
                "coreThing.iotHost",
                format!("expected a string, found {}", other.describe()),
            );
            String::new()
        }
        None => {
            r.error(
                "coreThing.iotHost",
                "missing; required (the AWS IoT endpoint, or \"none\" to run offline)",
            );
            String::new()
        }
    };
    let thing_arn = o.string(r, "thingArn").unwrap_or_default();
    let mut thing_name = String::new();
    if !thing_arn.is_empty() {
        match thing_name_of(&thing_arn) {
            Some(n) => thing_name = n.to_string(),
            None => r.error(
                "coreThing.thingArn",
                format!("found \"{thing_arn}\"; allowed arn:<partition>:iot:<region>:<account-id>:thing/<thing-name>"),
            ),
        }
    }
    let gg_host = o.string(r, "ggHost").unwrap_or_default();
    let iot_mqtt_port = port_warn(r, &mut o, "iotMqttPort", 8883, &[8883, 443]);
    let iot_http_port = port_warn(r, &mut o, "iotHttpPort", 8443, &[8443, 443]);
    let gg_http_port = port_warn(r, &mut o, "ggHttpPort", 8443, &[8443, 443]);
    let gg_mqtt_port = o
        .int(r, "ggMqttPort", 1024, 65535, "", false)
        .map_or(limits::DEFAULT_GG_MQTT_PORT, |p| p as u16);
    let gg_daemon_port = o
        .int(r, "ggDaemonPort", 1024, 65535, "", false)
        .map_or(limits::DEFAULT_GG_DAEMON_PORT, |p| p as u16);
    if gg_daemon_port == gg_mqtt_port {
        r.error(
            "coreThing.ggDaemonPort",
            format!("{gg_daemon_port} is also ggMqttPort; the two must differ"),
        );
    }
    let keep_alive = o
        .int(r, "keepAlive", 30, 1200, "seconds", false)
        .map_or(limits::DEFAULT_KEEP_ALIVE_SECS, |k| k as u16);
    let network_proxy = o.take("networkProxy").and_then(|v| read_proxy(r, v));
    let retry = read_retry_interval(&mut o, r);
    let mqtt_operation_timeout = o
        .int(
            r,
            "mqttOperationTimeout",
            limits::DEFAULT_MQTT_OPERATION_TIMEOUT_SECS as i64,
            u32::MAX as i64,
            "seconds",
            false,
        )
        .map_or(limits::DEFAULT_MQTT_OPERATION_TIMEOUT_SECS, |t| t as u32);
    let system_component_auth_timeout = o
        .int(
            r,
            "systemComponentAuthTimeout",
            500,
            5000,
            "milliseconds",
            false,
        )
        .map_or(limits::DEFAULT_SYSTEM_COMPONENT_AUTH_TIMEOUT_MS, |t| {
            t as u32
        });
    let core_client_id = o.string(r, "coreClientId");
    if let Some(id) = &core_client_id {
        let n = id.chars().count();
        if !(1..=128).contains(&n) {
            r.error(
                "coreThing.coreClientId",
                format!("found {n} characters; allowed 1–128"),
            );
        }
    }
    o.finish(r);
    let ct = CoreThing {
        ca_path,
        cert_path,
        key_path,
        thing_arn,
        thing_name,
        iot_host,
        gg_host,
        iot_mqtt_port,
        iot_http_port,
        gg_mqtt_port,
        gg_http_port,
        gg_daemon_port,
        keep_alive,
        network_proxy,
        mqtt_operation_timeout,
        system_component_auth_timeout,
        core_client_id,
    };
    Some((ct, retry))
}

/// The thing name in `arn:<partition>:iot:<region>:<account>:thing/<name>`.
pub fn thing_name_of(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    let (arn_, _partition, service, _region, _account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    let name = resource.strip_prefix("thing/")?;
    (arn_ == "arn" && service == "iot" && !name.is_empty() && !name.contains('/')).then_some(name)
}

fn read_proxy(r: &mut Report, v: Node) -> Option<NetworkProxy> {
    let mut o = Obj::new(r, "coreThing.networkProxy", v)?;
    let no_proxy_addresses = o
        .string(r, "noProxyAddresses")
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let proxy = o
        .require(r, "proxy")
        .and_then(|p| Obj::new(r, "coreThing.networkProxy.proxy", p));
    o.finish(r);
    let mut p = proxy?;
    let url = p.require(r, "url").map(|u| (u, p.key("url")));
    let username = p.string(r, "username");
    let password = p.string(r, "password");
    p.finish(r);
    let (url, key) = url?;
    let Some(url) = url.as_str() else {
        r.error(&key, format!("expected a string, found {}", url.describe()));
        return None;
    };
    let bad = |r: &mut Report, why: &str| {
        r.error(
            &key,
            format!("found \"{url}\": {why}; allowed http(s)://[user:password@]host[:port]"),
        );
    };
    let (tls, rest) = if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else {
        bad(r, "the scheme must be http or https");
        return None;
    };
    let authority = rest.split('/').next().unwrap_or("");
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        // A bracketed IPv6 literal has colons inside; its port comes after "]:".
        Some((h, p)) if !p.contains(']') => match p.parse::<u16>() {
            Ok(p) if p > 0 => (h, p),
            _ => {
                bad(r, "the port is not 1–65535");
                return None;
            }
        },
        _ => (hostport, if tls { 443 } else { 80 }),
    };
    if host.is_empty() {
        bad(r, "no host");
        return None;
    }
    // userinfo in the URL wins over proxy.username/proxy.password (guide).
    let (username, password) = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((n, pw)) => (Some(n.to_string()), Some(pw.to_string())),
            None => (Some(u.to_string()), None),
        },
        None => (username, password),
    };
    Some(NetworkProxy {
        url: url.to_string(),
        tls,
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port,
        username,
        password,
        no_proxy_addresses,
    })
}

impl Default for Runtime {
    fn default() -> Self {
        Runtime {
            max_work_item_count: limits::DEFAULT_MAX_WORK_ITEM_COUNT,
            max_concurrent_limit: limits::DEFAULT_LAMBDA_WORKERS,
            lru_size: limits::DEFAULT_LAMBDA_WORKERS,
            post_start_health_check_timeout: limits::DEFAULT_POST_START_HEALTH_CHECK_MS,
            allow_functions_to_run_as_root: false,
            cgroup_use_systemd: None,
        }
    }
}

fn read_runtime(r: &mut Report, v: Node) -> Option<Runtime> {
    let mut o = Obj::new(r, "runtime", v)?;
    let d = Runtime::default();
    let max = limits::MAX_WORK_ITEM_COUNT as i64;
    let rt = Runtime {
        max_work_item_count: o
            .int(r, "maxWorkItemCount", 1, max, "items", false)
            .map_or(d.max_work_item_count, |n| n as u32),
        max_concurrent_limit: o
            .int(r, "maxConcurrentLimit", 1, 1024, "workers", false)
            .map_or(d.max_concurrent_limit, |n| n as u32),
        lru_size: o
            .int(r, "lruSize", 1, 1024, "workers", false)
            .map_or(d.lru_size, |n| n as u32),
        post_start_health_check_timeout: o
            .int(
                r,
                "postStartHealthCheckTimeout",
                1,
                3_600_000,
                "milliseconds",
                false,
            )
            .map_or(d.post_start_health_check_timeout, |n| n as u64),
        allow_functions_to_run_as_root: o.yes_no(r, "allowFunctionsToRunAsRoot").unwrap_or(false),
        cgroup_use_systemd: None,
    };
    // Containers are not used by sprig; the key is valid Greengrass, so only its value is checked.
    let _ = o.yes_no(r, "mountAllBlockDevices");
    let mut rt = rt;
    if let Some(mut cg) = o
        .take("cgroup")
        .and_then(|c| Obj::new(r, "runtime.cgroup", c))
    {
        rt.cgroup_use_systemd = cg.yes_no(r, "useSystemd");
        cg.finish(r);
    }
    if rt.max_concurrent_limit < rt.lru_size {
        r.error(
            "runtime.maxConcurrentLimit",
            format!(
                "found {}; allowed at least lruSize ({})",
                rt.max_concurrent_limit, rt.lru_size
            ),
        );
    }
    o.finish(r);
    Some(rt)
}

/// `file:///abs/path` → `/abs/path`; anything else is an error with the guide's wording.
fn file_uri(r: &mut Report, key: &str, v: Node) -> Option<PathBuf> {
    let Some(s) = v.as_str() else {
        r.error(key, format!("expected a string, found {}", v.describe()));
        return None;
    };
    if let Some(path) = s.strip_prefix("file://") {
        if path.starts_with('/') {
            return Some(PathBuf::from(path));
        }
        r.error(
            key,
            format!("found \"{s}\": a relative file URI; allowed file:///absolute/path"),
        );
    } else if s.starts_with("pkcs11:") {
        r.error(key, format!("found \"{s}\": PKCS#11 (HSM) keys are not supported by sprig yet; use file:///absolute/path"));
    } else {
        r.error(
            key,
            format!("Error occurred while generating TLS config: ErrUnknownURIScheme (found \"{s}\"; allowed file:///absolute/path)"),
        );
    }
    None
}

fn read_principal(r: &mut Report, path: &str, v: Node, cert: bool) -> Option<Principal> {
    let mut o = Obj::new(r, path, v)?;
    let key_key = o.key("privateKeyPath");
    let key = o
        .require(r, "privateKeyPath")
        .and_then(|k| file_uri(r, &key_key, k));
    let cert_key = o.key("certificatePath");
    let certificate_path = match o.take("certificatePath") {
        Some(c) => file_uri(r, &cert_key, c),
        None if cert => {
            r.error(&cert_key, "missing; required for IoTCertificate");
            None
        }
        None => None,
    };
    o.finish(r);
    Some(Principal {
        private_key_path: key?,
        certificate_path,
    })
}

fn read_crypto(r: &mut Report, v: Node) -> Option<Crypto> {
    let mut o = Obj::new(r, "crypto", v)?;
    let ca = o
        .require(r, "caPath")
        .and_then(|c| file_uri(r, "crypto.caPath", c));
    let pkcs11 = o.take("PKCS11").is_some();
    if pkcs11 {
        r.error("crypto.PKCS11", "hardware security (PKCS#11) is not supported by sprig yet; remove the PKCS11 block and use file:/// keys");
    }
    let mut principals = o.take("principals").map(|p| (p, "crypto.principals"));
    if let Some(p) = o.take(" principals") {
        // Greengrass v1.7–1.9 docs spell it with a leading space; configs copied from them work.
        r.warn(
            "crypto. principals",
            "key has a leading space (a typo from the v1.7–1.9 guide); read as \"principals\"",
        );
        if principals.is_none() {
            principals = Some((p, "crypto.principals"));
        }
    }
    o.finish(r);
    let mut crypto = Crypto {
        ca_path: PathBuf::new(),
        iot_certificate: None,
        mqtt_server_certificate: None,
        secrets_manager: None,
        pkcs11,
    };
    if let Some((p, path)) = principals {
        if let Some(mut po) = Obj::new(r, path, p) {
            crypto.iot_certificate = po
                .take("IoTCertificate")
                .and_then(|v| read_principal(r, "crypto.principals.IoTCertificate", v, true));
            let mut server = po
                .take("MQTTServerCertificate")
                .map(|v| (v, "crypto.principals.MQTTServerCertificate"));
            if let Some(v) = po.take("MQTTSERVERCertificate") {
                // The guide's HSM chapter spells it this way; configs copied from it work.
                r.warn(
                    "crypto.principals.MQTTSERVERCertificate",
                    "spelling from the guide's HSM example; read as \"MQTTServerCertificate\"",
                );
                server = server.or(Some((v, "crypto.principals.MQTTSERVERCertificate")));
            }
            crypto.mqtt_server_certificate =
                server.and_then(|(v, path)| read_principal(r, path, v, false));
            crypto.secrets_manager = po
                .take("SecretsManager")
                .and_then(|v| read_principal(r, "crypto.principals.SecretsManager", v, false));
            po.finish(r);
        }
    }
    crypto.ca_path = ca?;
    Some(crypto)
}

impl Default for SprigExtensions {
    fn default() -> Self {
        SprigExtensions {
            max_connections: limits::DEFAULT_MAX_CONNECTIONS,
            server_cert_validity_days: limits::DEFAULT_SERVER_CERT_VALIDITY_DAYS,
            stream_store_max_bytes: limits::DEFAULT_STREAM_STORE_MAX_BYTES,
            discovery_port: limits::DEFAULT_DISCOVERY_PORT,
            discovery_port_set: false,
            connectivity: Vec::new(),
        }
    }
}

fn read_sprig(r: &mut Report, v: Node) -> SprigExtensions {
    let mut s = SprigExtensions::default();
    let Some(mut o) = Obj::new(r, "sprig", v) else {
        return s;
    };
    if let Some(n) = o.int(
        r,
        "maxConnections",
        1,
        limits::MAX_CONNECTIONS_CAP as i64,
        "connections",
        false,
    ) {
        s.max_connections = n as usize;
    }
    if let Some(d) = o.int(r, "serverCertValidityDays", 7, 30, "days", false) {
        s.server_cert_validity_days = d as u32;
    }
    if let Some(n) = o.int(
        r,
        "streamStoreMaxBytes",
        limits::MIN_STREAM_STORE_MAX_BYTES as i64,
        limits::MAX_STREAM_STORE_MAX_BYTES as i64,
        "bytes",
        false,
    ) {
        s.stream_store_max_bytes = n as u64;
    }
    if let Some(p) = o.int(
        r,
        "discoveryPort",
        0,
        65535,
        "(0 disables discovery)",
        false,
    ) {
        s.discovery_port = p as u16;
        s.discovery_port_set = true;
    }
    if let Some(v) = o.take("connectivity") {
        s.connectivity = read_connectivity(r, v);
    }
    o.finish(r);
    s
}

/// `sprig.connectivity`: a list of `{hostAddress, portNumber, metadata, id}`.
fn read_connectivity(r: &mut Report, v: Node) -> Vec<Connectivity> {
    let key = "sprig.connectivity";
    let Some(items) = v.as_array() else {
        r.error(
            key,
            format!(
                "expected a list of {{hostAddress, portNumber, metadata}}, found {}",
                v.describe()
            ),
        );
        return Vec::new();
    };
    if items.len() > limits::DISCOVERY_MAX_CONNECTIVITY {
        r.error(
            key,
            format!(
                "found {} entries; allowed at most {}",
                items.len(),
                limits::DISCOVERY_MAX_CONNECTIVITY
            ),
        );
        return Vec::new();
    }
    let mut out: Vec<Connectivity> = Vec::new();
    for (n, item) in items.enumerate() {
        let path = format!("{key}[{n}]");
        let Some(mut o) = Obj::new(r, &path, item) else {
            continue;
        };
        let host = o.require(r, "hostAddress").and(o.string(r, "hostAddress"));
        let port = o
            .require(r, "portNumber")
            .and(o.int(r, "portNumber", 1, 65535, "", true));
        let metadata = o.string(r, "metadata").unwrap_or_default();
        let id = o.string(r, "id");
        o.finish(r);
        if metadata.len() > limits::DISCOVERY_MAX_METADATA_BYTES {
            r.error(
                &format!("{path}.metadata"),
                format!(
                    "{} bytes; allowed at most {}",
                    metadata.len(),
                    limits::DISCOVERY_MAX_METADATA_BYTES
                ),
            );
        }
        let host = host.filter(|h| {
            let ok = valid_host_address(h);
            if !ok {
                r.error(
                    &format!("{path}.hostAddress"),
                    format!("found \"{h}\"; expected an IP address or a DNS name (letters, digits, '-', '.'; at most {} bytes)", limits::DISCOVERY_MAX_HOST_BYTES),
                );
            }
            ok
        });
        let id = id.unwrap_or_else(|| format!("MANUAL_{}_{n}", host.as_deref().unwrap_or("")));
        if id.is_empty() || id.len() > 128 {
            r.error(&format!("{path}.id"), "expected 1–128 characters");
        } else if out.iter().any(|c| c.id == id) {
            r.error(
                &format!("{path}.id"),
                format!("\"{id}\" is used twice; devices tell entries apart by id"),
            );
        }
        if let (Some(host_address), Some(port)) = (host, port) {
            out.push(Connectivity {
                id,
                host_address,
                port_number: port as u16,
                metadata,
            });
        }
    }
    out
}

/// An IP address, or a DNS name: dot-separated labels of letters, digits and '-'.
pub fn valid_host_address(h: &str) -> bool {
    if h.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    !h.is_empty()
        && h.len() <= limits::DISCOVERY_MAX_HOST_BYTES
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::super::validate::testing;
    use super::*;

    const ROOT: &str = "/greengrass";
    const FILE: &str = "/greengrass/config/config.json";

    /// The guide's v1.10 console-generated example.
    pub(crate) const GUIDE_EXAMPLE: &str = r#"{
      "coreThing" : {
        "caPath" : "root.ca.pem",
        "certPath" : "hash.cert.pem",
        "keyPath" : "hash.private.key",
        "thingArn" : "arn:aws:iot:us-west-2:123456789012:thing/core-thing-name",
        "iotHost" : "host-prefix-ats.iot.us-west-2.amazonaws.com",
        "ggHost" : "greengrass-ats.iot.us-west-2.amazonaws.com",
        "keepAlive" : 600
      },
      "runtime" : { "maxWorkItemCount" : 1024, "cgroup" : { "useSystemd" : "yes" } },
      "managedRespawn" : false,
      "crypto" : {
        "principals" : {
          "SecretsManager" : { "privateKeyPath" : "file:///greengrass/certs/hash.private.key" },
          "IoTCertificate" : {
            "privateKeyPath" : "file:///greengrass/certs/hash.private.key",
            "certificatePath" : "file:///greengrass/certs/hash.cert.pem"
          }
        },
        "caPath" : "file:///greengrass/certs/root.ca.pem"
      }
    }"#;

    fn parse(s: &str) -> Result<(Config, Vec<ConfigError>), Vec<ConfigError>> {
        Config::parse(s.as_bytes(), Path::new(ROOT), Path::new(FILE))
    }

    fn ok(s: &str) -> (Config, Vec<ConfigError>) {
        match parse(s) {
            Ok(v) => v,
            Err(e) => panic!("{s} failed: {e:?}"),
        }
    }

    /// `coreThing` body merged into a minimal offline config.
    fn offline(core_extra: &str, top_extra: &str) -> String {
        format!(r#"{{"coreThing":{{"iotHost":"none"{core_extra}}}{top_extra}}}"#)
    }

    fn errors(s: &str) -> Vec<(String, String)> {
        testing::errors(s, parse(s))
    }

    fn one_error(s: &str) -> (String, String) {
        testing::one_error(errors(s))
    }

    fn warnings(s: &str) -> Vec<(String, String)> {
        ok(s).1.into_iter().map(|e| (e.key, e.message)).collect()
    }

    fn assert_files(c: &Config) {
        let certs = Path::new("/greengrass/certs");
        assert_eq!(c.ca_file(), Some(certs.join("root.ca.pem").as_path()));
        assert_eq!(c.cert_file(), Some(certs.join("hash.cert.pem").as_path()));
        assert_eq!(c.key_file(), Some(certs.join("hash.private.key").as_path()));
    }

    #[test]
    fn guide_example_and_defaults() {
        let (c, w) = ok(GUIDE_EXAMPLE);
        assert!(w.is_empty(), "{w:?}");
        assert!(c.cloud_enabled());
        let ct = &c.core_thing;
        assert_eq!(ct.thing_name, "core-thing-name");
        assert_eq!(ct.iot_mqtt_port, 8883);
        assert_eq!(ct.iot_http_port, 8443);
        assert_eq!(ct.gg_http_port, 8443);
        assert_eq!(ct.gg_mqtt_port, 8883);
        assert_eq!(ct.gg_daemon_port, 8000);
        assert_eq!(ct.keep_alive, 600);
        assert_eq!(ct.mqtt_operation_timeout, 5);
        assert_eq!(ct.system_component_auth_timeout, 5000);
        assert_eq!(ct.network_proxy, None);
        // crypto present: legacy paths ignored.
        assert_eq!(ct.ca_path, None);
        assert_files(&c);
        assert_eq!(c.cloud_client_id(), "core-thing-name");
        let crypto = c.crypto.as_ref().unwrap();
        assert!(crypto.secrets_manager.is_some());
        assert!(crypto.mqtt_server_certificate.is_none());
        assert_eq!(c.runtime.max_work_item_count, 1024);
        assert_eq!(c.runtime.max_concurrent_limit, 25);
        assert_eq!(c.runtime.lru_size, 25);
        assert_eq!(c.runtime.post_start_health_check_timeout, 30_000);
        assert!(!c.runtime.allow_functions_to_run_as_root);
        assert_eq!(c.runtime.cgroup_use_systemd, Some(true));
        assert!(!c.managed_respawn);
        assert_eq!(c.write_dir, Path::new(ROOT));
        assert_eq!(c.mqtt_max_connection_retry_interval, 60);
        assert_eq!(c.pid_file_directory, Path::new("/var/run"));
        assert_eq!(c.sprig.max_connections, limits::DEFAULT_MAX_CONNECTIONS);
        assert_eq!(c.sprig.server_cert_validity_days, 7);
        assert_eq!(c.shadow_sync_timeout, 5);
    }

    #[test]
    fn legacy_paths_resolve_against_certs() {
        let s = GUIDE_EXAMPLE.replace("\"crypto\"", "\"unused\"");
        let (c, w) = ok(&s);
        assert_eq!(w.len(), 1, "unknown key 'unused' warns: {w:?}");
        assert!(c.crypto.is_none());
        assert_files(&c);
    }

    #[test]
    fn offline_needs_no_identity() {
        for host in ["none", "", "NONE", " "] {
            let (c, w) = ok(&format!(r#"{{"coreThing":{{"iotHost":"{host}"}}}}"#));
            assert!(w.is_empty());
            assert!(!c.cloud_enabled());
            assert_eq!(c.cert_file(), None);
        }
    }

    #[test]
    fn online_needs_identity() {
        let e = errors(r#"{"coreThing":{"iotHost":"x.iot.us-east-1.amazonaws.com"}}"#);
        let keys: Vec<&str> = e.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["coreThing.thingArn", "coreThing.ggHost", "coreThing"]
        );
        assert_eq!(
            e[2].1,
            "The configuration file is missing the CaPath, CertPath or KeyPath."
        );
    }

    #[test]
    fn missing_core_thing_and_iot_host() {
        assert_eq!(
            one_error("{}"),
            ("coreThing".into(), "missing; this key is required".into())
        );
        let (k, m) = one_error(r#"{"coreThing":{}}"#);
        assert_eq!(k, "coreThing.iotHost");
        assert!(m.contains("\"none\""), "{m}");
        assert_eq!(
            one_error(r#"{"coreThing":[]}"#).1,
            "expected an object, found an array"
        );
        assert_eq!(one_error("[]").1, "expected an object, found an array");
    }

    #[test]
    fn invalid_json_names_file_and_position() {
        let (k, m) = one_error("{\n \"coreThing\": {\"iotHost\": \"none\",}\n}");
        assert_eq!(k, "coreThing");
        assert_eq!(
            m,
            "Failed to parse /greengrass/config/config.json. line 2, column 34: unexpected '}'"
        );
        let (_, m) = one_error("{\"coreThing\":");
        assert!(m.ends_with("unexpected end of input"), "{m}");
        let (_, m) = one_error("\u{0}\u{1}garbage");
        assert!(m.starts_with("Failed to parse"), "{m}");
        let e = Config::parse(b"{\"a\xff\":1}", Path::new(ROOT), Path::new(FILE)).unwrap_err();
        assert!(e[0].message.ends_with("invalid UTF-8"), "{:?}", e);
    }

    #[test]
    fn oversized_document() {
        let big = format!(
            "{{\"coreThing\":{{\"iotHost\":\"none\"}},\"x\":\"{}\"}}",
            "a".repeat(limits::MAX_CONFIG_JSON_BYTES)
        );
        let (k, m) = one_error(&big);
        assert_eq!(k, "");
        assert!(m.contains("allowed at most 65536 bytes"), "{m}");
    }

    #[test]
    fn ports() {
        let (c, w) = ok(&offline(
            r#","iotMqttPort":443,"iotHttpPort":443,"ggHttpPort":443,"ggMqttPort":9000,"ggDaemonPort":8001"#,
            "",
        ));
        assert!(w.is_empty());
        let ct = c.core_thing;
        assert_eq!(
            (
                ct.iot_mqtt_port,
                ct.iot_http_port,
                ct.gg_http_port,
                ct.gg_mqtt_port,
                ct.gg_daemon_port
            ),
            (443, 443, 443, 9000, 8001)
        );
        // Other ports work for private brokers, with a warning.
        let (c, w) = ok(&offline(
            r#","iotMqttPort":1883,"iotHttpPort":80,"ggHttpPort":8080"#,
            "",
        ));
        assert_eq!(c.core_thing.iot_mqtt_port, 1883);
        let keys: Vec<&str> = w.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "coreThing.iotMqttPort",
                "coreThing.iotHttpPort",
                "coreThing.ggHttpPort"
            ]
        );
        assert!(
            w[0].message.contains("AWS allows 8883 or 443"),
            "{}",
            w[0].message
        );
        assert_eq!(
            one_error(&offline(r#","iotMqttPort":0"#, "")).1,
            "found 0; allowed 1–65535"
        );
        assert_eq!(
            one_error(&offline(r#","iotHttpPort":65536"#, "")).1,
            "found 65536; allowed 1–65535"
        );
        assert_eq!(
            one_error(&offline(r#","ggMqttPort":1023"#, "")).1,
            "found 1023; allowed 1024–65535"
        );
        assert_eq!(
            one_error(&offline(r#","ggDaemonPort":80"#, "")).1,
            "found 80; allowed 1024–65535"
        );
        assert_eq!(
            one_error(&offline(r#","ggMqttPort":"8883""#, "")).1,
            "found \"8883\"; allowed an integer 1024–65535"
        );
        assert_eq!(
            one_error(&offline(r#","ggMqttPort":8000"#, "")).0,
            "coreThing.ggDaemonPort"
        );
    }

    #[test]
    fn core_thing_ranges() {
        assert_eq!(
            ok(&offline(r#","keepAlive":30"#, ""))
                .0
                .core_thing
                .keep_alive,
            30
        );
        assert_eq!(
            ok(&offline(r#","keepAlive":1200"#, ""))
                .0
                .core_thing
                .keep_alive,
            1200
        );
        assert_eq!(
            one_error(&offline(r#","keepAlive":29"#, "")),
            (
                "coreThing.keepAlive".into(),
                "found 29; allowed 30–1200 seconds".into()
            )
        );
        assert_eq!(
            one_error(&offline(r#","keepAlive":1201"#, "")).1,
            "found 1201; allowed 30–1200 seconds"
        );
        assert_eq!(
            one_error(&offline(r#","keepAlive":60.5"#, "")).1,
            "found 60.5; allowed an integer 30–1200 seconds"
        );
        assert_eq!(
            ok(&offline(r#","mqttOperationTimeout":30"#, ""))
                .0
                .core_thing
                .mqtt_operation_timeout,
            30
        );
        assert_eq!(
            one_error(&offline(r#","mqttOperationTimeout":4"#, "")).0,
            "coreThing.mqttOperationTimeout"
        );
        assert_eq!(
            ok(&offline(r#","systemComponentAuthTimeout":500"#, ""))
                .0
                .core_thing
                .system_component_auth_timeout,
            500
        );
        assert_eq!(
            one_error(&offline(r#","systemComponentAuthTimeout":499"#, "")).1,
            "found 499; allowed 500–5000 milliseconds"
        );
        assert_eq!(
            one_error(&offline(r#","systemComponentAuthTimeout":5001"#, "")).0,
            "coreThing.systemComponentAuthTimeout"
        );
        assert_eq!(
            ok(&offline(r#","coreClientId":"abc""#, ""))
                .0
                .cloud_client_id(),
            "abc"
        );
        let long = format!(r#","coreClientId":"{}""#, "a".repeat(129));
        assert_eq!(
            one_error(&offline(&long, "")).1,
            "found 129 characters; allowed 1–128"
        );
        assert_eq!(
            one_error(&offline(r#","thingArn":"core""#, "")).0,
            "coreThing.thingArn"
        );
        assert_eq!(
            thing_name_of("arn:aws-cn:iot:cn-north-1:1:thing/x"),
            Some("x")
        );
        assert_eq!(thing_name_of("arn:aws:iot:r:a:policy/x"), None);
        assert_eq!(thing_name_of("arn:aws:iot:r:a:thing/"), None);
    }

    #[test]
    fn retry_interval_in_either_place() {
        assert_eq!(
            ok(&offline("", r#","mqttMaxConnectionRetryInterval":30"#))
                .0
                .mqtt_max_connection_retry_interval,
            30
        );
        assert_eq!(
            ok(&offline(r#","mqttMaxConnectionRetryInterval":20"#, ""))
                .0
                .mqtt_max_connection_retry_interval,
            20
        );
        let both = offline(
            r#","mqttMaxConnectionRetryInterval":20"#,
            r#","mqttMaxConnectionRetryInterval":30"#,
        );
        assert_eq!(
            ok(&both).0.mqtt_max_connection_retry_interval,
            20,
            "coreThing wins"
        );
        assert_eq!(
            one_error(&offline("", r#","mqttMaxConnectionRetryInterval":0"#)).0,
            "mqttMaxConnectionRetryInterval"
        );
    }

    #[test]
    fn top_level_keys() {
        let (c, _) = ok(&offline(
            "",
            r#","managedRespawn":"true","writeDirectory":"/var/sprig","pidFileDirectory":"/tmp/run""#,
        ));
        assert!(c.managed_respawn);
        assert_eq!(c.write_dir, Path::new("/var/sprig"));
        assert_eq!(c.pid_file_directory, Path::new("/tmp/run"));
        assert!(
            ok(&offline("", r#","managedRespawn":true"#))
                .0
                .managed_respawn
        );
        assert!(
            !ok(&offline("", r#","managedRespawn":"false""#))
                .0
                .managed_respawn
        );
        assert_eq!(
            one_error(&offline("", r#","managedRespawn":"yes""#)).0,
            "managedRespawn"
        );
        assert_eq!(
            one_error(&offline("", r#","writeDirectory":"rel/dir""#)).1,
            "found \"rel/dir\"; allowed an absolute path (starting with /)"
        );
        assert_eq!(
            one_error(&offline("", r#","pidFileDirectory":5"#)).1,
            "expected a string, found 5"
        );
        let (c, _) = ok(&offline("", r#","system":{"shadowSyncTimeout":10}"#));
        assert_eq!(c.shadow_sync_timeout, 10);
    }

    #[test]
    fn runtime_keys() {
        let rt = r#","runtime":{"maxWorkItemCount":5,"maxConcurrentLimit":30,"lruSize":10,"postStartHealthCheckTimeout":40000,"allowFunctionsToRunAsRoot":"yes","cgroup":{"useSystemd":"no"},"mountAllBlockDevices":"no"}"#;
        let (c, w) = ok(&offline("", rt));
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.runtime.max_work_item_count, 5);
        assert_eq!(c.runtime.max_concurrent_limit, 30);
        assert_eq!(c.runtime.lru_size, 10);
        assert_eq!(c.runtime.post_start_health_check_timeout, 40000);
        assert!(c.runtime.allow_functions_to_run_as_root);
        assert_eq!(c.runtime.cgroup_use_systemd, Some(false));
        assert_eq!(
            one_error(&offline("", r#","runtime":{"maxWorkItemCount":0}"#)).1,
            "found 0; allowed 1–65536 items"
        );
        assert_eq!(
            one_error(&offline("", r#","runtime":{"maxWorkItemCount":65537}"#)).0,
            "runtime.maxWorkItemCount"
        );
        assert_eq!(
            one_error(&offline(
                "",
                r#","runtime":{"allowFunctionsToRunAsRoot":true}"#
            ))
            .1,
            "found true; allowed \"yes\" or \"no\""
        );
        assert_eq!(
            one_error(&offline(
                "",
                r#","runtime":{"cgroup":{"useSystemd":"true"}}"#
            ))
            .0,
            "runtime.cgroup.useSystemd"
        );
        assert_eq!(
            one_error(&offline("", r#","runtime":{"lruSize":30}"#)).1,
            "found 25; allowed at least lruSize (30)"
        );
        assert_eq!(
            one_error(&offline(
                "",
                r#","runtime":{"postStartHealthCheckTimeout":0}"#
            ))
            .0,
            "runtime.postStartHealthCheckTimeout"
        );
    }

    #[test]
    fn crypto_uris() {
        let c = |ca: &str| offline("", &format!(r#","crypto":{{"caPath":"{ca}"}}"#));
        assert_eq!(
            ok(&c("file:///etc/ca.pem")).0.crypto.unwrap().ca_path,
            Path::new("/etc/ca.pem")
        );
        let (k, m) = one_error(&c("/etc/ca.pem"));
        assert_eq!(k, "crypto.caPath");
        assert!(
            m.starts_with("Error occurred while generating TLS config: ErrUnknownURIScheme"),
            "{m}"
        );
        assert!(one_error(&c("http://x/ca.pem"))
            .1
            .contains("ErrUnknownURIScheme"));
        assert!(one_error(&c("file://certs/ca.pem"))
            .1
            .contains("relative file URI"));
        assert!(one_error(&c("pkcs11:object=x;type=private"))
            .1
            .contains("not supported by sprig yet"));
        let p = r#","crypto":{"caPath":"file:///ca","PKCS11":{"P11Provider":"/lib/x.so"}}"#;
        let (k, m) = one_error(&offline("", p));
        assert_eq!(k, "crypto.PKCS11");
        assert!(m.contains("not supported by sprig yet"), "{m}");
        assert_eq!(
            one_error(&offline("", r#","crypto":{}"#)).0,
            "crypto.caPath"
        );
        let no_cert = r#","crypto":{"caPath":"file:///ca","principals":{"IoTCertificate":{"privateKeyPath":"file:///k"}}}"#;
        assert_eq!(
            one_error(&offline("", no_cert)).0,
            "crypto.principals.IoTCertificate.certificatePath"
        );
        let bad_key = r#","crypto":{"caPath":"file:///ca","principals":{"SecretsManager":{"privateKeyPath":"s3://k"}}}"#;
        assert_eq!(
            one_error(&offline("", bad_key)).0,
            "crypto.principals.SecretsManager.privateKeyPath"
        );
    }

    #[test]
    fn crypto_principals_typo_and_server_key() {
        let s = r#","crypto":{"caPath":"file:///ca"," principals":{"MQTTServerCertificate":{"privateKeyPath":"file:///s.key"},"MQTTSERVERCertificate":{},"SecretManager":{}}}"#;
        let (c, w) = ok(&offline("", s));
        let crypto = c.crypto.unwrap();
        assert_eq!(
            crypto.mqtt_server_certificate.unwrap().private_key_path,
            Path::new("/s.key")
        );
        let keys: Vec<&str> = w.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "crypto. principals",
                "crypto.principals.MQTTSERVERCertificate",
                "crypto.principals.SecretManager"
            ]
        );
        assert!(w[0].message.contains("leading space"));
        assert!(w[1].message.contains("read as \"MQTTServerCertificate\""));
        assert_eq!(w[2].message, "unknown key, ignored");
        // The guide's HSM spelling alone is read as the server key.
        let s = r#","crypto":{"caPath":"file:///ca","principals":{"MQTTSERVERCertificate":{"privateKeyPath":"file:///t.key"}}}"#;
        let crypto = ok(&offline("", s)).0.crypto.unwrap();
        let server = crypto.mqtt_server_certificate.unwrap();
        assert_eq!(server.private_key_path, Path::new("/t.key"));
    }

    #[test]
    fn proxy() {
        let p = |url: &str| {
            offline(
                &format!(
                    r#","networkProxy":{{"noProxyAddresses":"http://128.12.34.56, www.x.com","proxy":{{"url":"{url}","username":"u","password":"p"}}}}"#
                ),
                "",
            )
        };
        let (c, _) = ok(&p("https://my-proxy-server:1100"));
        let np = c.core_thing.network_proxy.unwrap();
        assert_eq!(
            (np.tls, np.host.as_str(), np.port),
            (true, "my-proxy-server", 1100)
        );
        assert_eq!(
            (np.username.as_deref(), np.password.as_deref()),
            (Some("u"), Some("p"))
        );
        assert_eq!(np.no_proxy_addresses, ["http://128.12.34.56", "www.x.com"]);
        let np = ok(&p("http://Mary:pw@10.0.0.1"))
            .0
            .core_thing
            .network_proxy
            .unwrap();
        assert_eq!((np.tls, np.host.as_str(), np.port), (false, "10.0.0.1", 80));
        assert_eq!(
            (np.username.as_deref(), np.password.as_deref()),
            (Some("Mary"), Some("pw")),
            "userinfo wins"
        );
        let np = ok(&p("https://[::1]")).0.core_thing.network_proxy.unwrap();
        assert_eq!((np.host.as_str(), np.port), ("::1", 443));
        assert!(one_error(&p("socks5://x:1"))
            .1
            .contains("the scheme must be http or https"));
        assert!(one_error(&p("http://x:0")).1.contains("port"));
        assert!(one_error(&p("http://")).1.contains("no host"));
        assert_eq!(
            one_error(&offline(r#","networkProxy":{}"#, "")).0,
            "coreThing.networkProxy.proxy"
        );
    }

    #[test]
    fn sprig_extensions() {
        let (c, w) = ok(&offline(
            "",
            r#","sprig":{"maxConnections":10,"serverCertValidityDays":30}"#,
        ));
        assert!(w.is_empty());
        assert_eq!(
            (c.sprig.max_connections, c.sprig.server_cert_validity_days),
            (10, 30)
        );
        assert_eq!(
            one_error(&offline("", r#","sprig":{"serverCertValidityDays":6}"#)).1,
            "found 6; allowed 7–30 days"
        );
        assert_eq!(
            one_error(&offline("", r#","sprig":{"maxConnections":0}"#)).0,
            "sprig.maxConnections"
        );
        assert_eq!(
            one_error(&offline("", r#","sprig":{"maxConnections":5000}"#)).0,
            "sprig.maxConnections"
        );
    }

    #[test]
    fn discovery_keys() {
        let (c, _) = ok(&offline("", ""));
        assert_eq!(c.sprig.discovery_port, 8443);
        assert!(!c.sprig.discovery_port_set && c.sprig.connectivity.is_empty());
        let (c, w) = ok(&offline(
            "",
            r#","sprig":{"discoveryPort":0,"connectivity":[
                {"hostAddress":"192.168.1.5","portNumber":8883,"metadata":"lan"},
                {"hostAddress":"core.example.net","portNumber":"443","id":"dns"}]}"#,
        ));
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(
            (c.sprig.discovery_port, c.sprig.discovery_port_set),
            (0, true)
        );
        let ids: Vec<&str> = c.sprig.connectivity.iter().map(|x| x.id.as_str()).collect();
        assert_eq!(ids, ["MANUAL_192.168.1.5_0", "dns"]);
        assert_eq!(c.sprig.connectivity[1].port_number, 443);
        assert_eq!(c.sprig.connectivity[0].metadata, "lan");
        for (extra, key) in [
            (r#"{"discoveryPort":8883}"#, "sprig.discoveryPort"),
            (r#"{"discoveryPort":8000}"#, "sprig.discoveryPort"),
            (r#"{"discoveryPort":70000}"#, "sprig.discoveryPort"),
            (r#"{"connectivity":{}}"#, "sprig.connectivity"),
            (
                r#"{"connectivity":[{"portNumber":1}]}"#,
                "sprig.connectivity[0].hostAddress",
            ),
            (
                r#"{"connectivity":[{"hostAddress":"a b","portNumber":1}]}"#,
                "sprig.connectivity[0].hostAddress",
            ),
            (
                r#"{"connectivity":[{"hostAddress":"h","portNumber":0}]}"#,
                "sprig.connectivity[0].portNumber",
            ),
            (
                r#"{"connectivity":[{"hostAddress":"h","portNumber":1,"id":"x"},{"hostAddress":"i","portNumber":1,"id":"x"}]}"#,
                "sprig.connectivity[1].id",
            ),
        ] {
            let doc = offline("", &format!(r#","sprig":{extra}"#));
            assert_eq!(one_error(&doc).0, key, "{extra}");
        }
    }

    #[test]
    fn unknown_keys_warn_everywhere() {
        let w = warnings(&offline(
            r#","colour":1"#,
            r#","extra":{},"runtime":{"x":1},"sprig":{"y":2}"#,
        ));
        let keys: Vec<&str> = w.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["coreThing.colour", "runtime.x", "sprig.y", "extra"]);
    }

    #[test]
    fn mutated_documents_never_panic() {
        // Every single-byte deletion and a few substitutions at every position of the guide's
        // example: any result is fine, a panic is not.
        let doc = GUIDE_EXAMPLE.as_bytes();
        for i in 0..doc.len() {
            let mut cut = doc.to_vec();
            cut.remove(i);
            let _ = Config::parse(&cut, Path::new(ROOT), Path::new(FILE));
            for b in [b'"', b'{', b'0', b'\\', 0xff] {
                let mut m = doc.to_vec();
                m[i] = b;
                let _ = Config::parse(&m, Path::new(ROOT), Path::new(FILE));
            }
        }
    }

    #[test]
    fn all_errors_are_collected() {
        let s = offline(
            r#","keepAlive":1,"ggMqttPort":1"#,
            r#","runtime":{"maxWorkItemCount":0},"writeDirectory":"x""#,
        );
        assert_eq!(errors(&s).len(), 4);
    }
}
