//! Faults and abuse against the real daemon on loopback (issue 6 §3): slowloris devices, floods
//! at 10× maxWorkItemCount, `kill -9` loops during traffic, a flapping cloud broker, a full disk
//! under the FileSystem spool. Each test is bounded in time, polls instead of sleeping for
//! conditions, and asserts what a user relies on: the core keeps serving good devices, fds and
//! RSS stay bounded, drops are counted, acknowledged messages are not lost.
//!
//! Good devices are the stock mosquitto clients; abusive ones (never finishing TLS, never
//! sending CONNECT, never reading) are a small rustls client here, since no stock client can be
//! told to misbehave that way. Certificates come from the openssl CLI.

mod cloud_peer;
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::*;
use mqttbytes::v4::{self, Packet};
use mqttbytes::QoS;

/// Longest any one test step may wait (a loaded 2-core CI machine).
const WAIT: Duration = Duration::from_secs(60);

// ------------------------------------------------------------------------------------------
// Certificates: one CA, a server certificate for localhost, one certificate per device.

struct Pki {
    dir: PathBuf,
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        let pki = Pki {
            dir: dir.to_path_buf(),
        };
        pki.issue("ca", None, &[]);
        pki.issue(
            "server",
            Some("ca"),
            &[
                "subjectAltName=DNS:localhost,IP:127.0.0.1",
                "extendedKeyUsage=serverAuth",
            ],
        );
        pki
    }

    /// `<name>.crt` / `<name>.key`: P-256, signed by `ca` (or self-signed CA when None).
    fn issue(&self, name: &str, ca: Option<&str>, ext: &[&str]) {
        let (crt, key) = (self.crt(name), self.key(name));
        let (crt, key) = (crt.to_str().unwrap(), key.to_str().unwrap());
        let subj = format!("/CN={name}");
        let mut args = vec![
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "30",
            "-keyout",
            key,
            "-out",
            crt,
            "-subj",
            &subj,
        ];
        let (ca_crt, ca_key) = ca.map(|c| (self.crt(c), self.key(c))).unzip();
        if let (Some(c), Some(k)) = (&ca_crt, &ca_key) {
            args.extend(["-CA", c.to_str().unwrap(), "-CAkey", k.to_str().unwrap()]);
            args.extend(["-addext", "basicConstraints=critical,CA:FALSE"]);
        }
        for e in ext {
            args.extend(["-addext", e]);
        }
        openssl(&args);
    }

    fn device(&self, name: &str) {
        self.issue(name, Some("ca"), &["extendedKeyUsage=clientAuth"]);
    }

    fn crt(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.crt"))
    }

    fn key(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.key"))
    }

    /// The AWS IoT certificate id: hex SHA-256 of the certificate's DER.
    fn cert_id(&self, name: &str) -> String {
        let pem = std::fs::read(self.crt(name)).unwrap();
        let der = rustls_pemfile::certs(&mut &pem[..])
            .next()
            .unwrap()
            .unwrap();
        let d = ring::digest::digest(&ring::digest::SHA256, der.as_ref());
        d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }
}

const ACCOUNT: &str = "us-east-1:123456789012";

fn thing_arn(name: &str) -> String {
    format!("arn:aws:iot:{ACCOUNT}:thing/{name}")
}

/// group.json with `devices` and `(source, subject, target)` subscriptions, where source and
/// target are device names or `cloud`; `spooler` adds a GGCloudSpooler with that environment.
fn group_json(pki: &Pki, devices: &[&str], subs: &[(&str, &str, &str)], spooler: &str) -> String {
    let ep = |n: &str| {
        if n == "cloud" {
            n.to_string()
        } else {
            thing_arn(n)
        }
    };
    let devs: Vec<String> = devices
        .iter()
        .map(|d| {
            format!(
                r#"{{"Id":"{d}","ThingArn":"{}","CertificateArn":"arn:aws:iot:{ACCOUNT}:cert/{}","SyncShadow":false}}"#,
                thing_arn(d),
                pki.cert_id(d)
            )
        })
        .collect();
    let subs: Vec<String> = subs
        .iter()
        .enumerate()
        .map(|(i, (s, t, d))| {
            format!(
                r#"{{"Id":"s{i}","Source":"{}","Subject":"{t}","Target":"{}"}}"#,
                ep(s),
                ep(d)
            )
        })
        .collect();
    let functions = if spooler.is_empty() {
        String::new()
    } else {
        format!(
            r#","FunctionDefinitionVersion":{{"Functions":[{{"Id":"spooler","FunctionArn":"arn:aws:lambda:::function:GGCloudSpooler:1","FunctionConfiguration":{{"Executable":"spooler","MemorySize":32768,"Pinned":true,"Timeout":3,"Environment":{{"Variables":{{{spooler}}}}}}}}}]}}"#
        )
    };
    format!(
        r#"{{"GroupId":"faults","GroupVersionId":"1",
"CoreDefinitionVersion":{{"Cores":[{{"Id":"core","ThingArn":"{}","CertificateArn":"arn:aws:iot:{ACCOUNT}:cert/{}","SyncShadow":false}}]}},
"DeviceDefinitionVersion":{{"Devices":[{}]}},
"SubscriptionDefinitionVersion":{{"Subscriptions":[{}]}}{functions}}}"#,
        thing_arn("sprig-test-core"),
        "0".repeat(64),
        devs.join(","),
        subs.join(",")
    )
}

/// A test root whose broker uses the PKI's server certificate (config.json
/// `crypto.principals.MQTTServerCertificate`), with extra coreThing / runtime / top-level JSON.
struct Core {
    root: TestRoot,
    pki: Pki,
    port: u16,
}

impl Core {
    fn new(label: &str, devices: &[&str]) -> Core {
        let root = TestRoot::new(label);
        let pki = Pki::new(&root.certs());
        for d in devices {
            pki.device(d);
        }
        pki.device("core"); // the core's own IoT certificate, for the cloud link
        let port = free_port();
        Core { root, pki, port }
    }

    /// Writes config.json; `cloud` is `(host, port)` of the cloud broker or None for offline.
    fn configure(&self, max_work_items: u32, cloud: Option<u16>) {
        let c = &self.pki;
        let (host, cloud_port) = match cloud {
            Some(p) => ("localhost".to_string(), p),
            None => ("none".to_string(), 8883),
        };
        let text = format!(
            r#"{{
  "coreThing": {{
    "caPath": "ca.crt", "certPath": "core.crt", "keyPath": "core.key",
    "thingArn": "{core}", "iotHost": "{host}", "iotMqttPort": {cloud_port},
    "ggHost": "none", "ggMqttPort": {port}, "keepAlive": 30,
    "mqttMaxConnectionRetryInterval": 2
  }},
  "runtime": {{ "cgroup": {{ "useSystemd": "no" }}, "maxWorkItemCount": {max_work_items} }},
  "managedRespawn": false,
  "writeDirectory": "{write}",
  "pidFileDirectory": "{run}",
  "crypto": {{
    "caPath": "file://{ca}",
    "principals": {{
      "IoTCertificate": {{ "privateKeyPath": "file://{ck}", "certificatePath": "file://{cc}" }},
      "MQTTServerCertificate": {{ "privateKeyPath": "file://{sk}", "certificatePath": "file://{sc}" }}
    }}
  }}
}}"#,
            core = thing_arn("sprig-test-core"),
            port = self.port,
            write = self.root.write_dir().display(),
            run = self.root.pid_dir().display(),
            ca = c.crt("ca").display(),
            ck = c.key("core").display(),
            cc = c.crt("core").display(),
            sk = c.key("server").display(),
            sc = c.crt("server").display(),
        );
        self.root.write_config(&text);
    }

    fn group(&self, devices: &[&str], subs: &[(&str, &str, &str)], spooler: &str) {
        self.root
            .write_group(&group_json(&self.pki, devices, subs, spooler));
    }

    /// Starts the daemon in the foreground and waits until a device can connect.
    fn start(&self) -> Daemon {
        let mut d = self.root.start();
        let ok = wait_until(WAIT, || {
            if d.try_wait().is_some() {
                return true;
            }
            self.status().is_some() && TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        });
        assert!(
            ok && d.try_wait().is_none(),
            "sprig did not come up: {}",
            d.output()
        );
        d
    }

    /// status.json as the daemon last wrote it.
    fn status(&self) -> Option<sprig::json::Value> {
        let path = sprig::status::status_path(&self.root.write_dir());
        let bytes = std::fs::read(path).ok()?;
        sprig::json::parse(&bytes, 1 << 20, 16).ok()
    }

    /// A counter from status.json by path (`drops.queue_full`); 0 when absent.
    fn counter(&self, path: &str) -> i64 {
        let Some(mut v) = self.status() else { return 0 };
        for k in path.split('.') {
            match v.get(k) {
                Some(x) => v = x.clone(),
                None => return 0,
            }
        }
        v.as_i64().unwrap_or(0)
    }

    fn mosquitto_args(&self, device: &str) -> Vec<String> {
        let p = &self.pki;
        [
            "-h",
            "localhost",
            "-p",
            &self.port.to_string(),
            "--cafile",
            p.crt("ca").to_str().unwrap(),
            "--cert",
            p.crt(device).to_str().unwrap(),
            "--key",
            p.key(device).to_str().unwrap(),
            "-i",
            device,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// `mosquitto_sub` as `device` for one message on `topic`, in the background.
    fn sub_one(&self, device: &str, topic: &str) -> Child {
        Command::new("mosquitto_sub")
            .args(self.mosquitto_args(device))
            .args(["-t", topic, "-C", "1", "-W", "60"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mosquitto_sub (apt-get install mosquitto-clients)")
    }

    fn publish(&self, device: &str, topic: &str, msg: &str) -> Output {
        Command::new("mosquitto_pub")
            .args(self.mosquitto_args(device))
            .args(["-t", topic, "-m", msg, "-q", "1"])
            .stdin(Stdio::null())
            .output()
            .expect("mosquitto_pub")
    }

    /// `from` publishes until a fresh `mosquitto_sub` of `to` receives the message: proves the
    /// core serves good devices right now.
    fn assert_delivers(&self, from: &str, to: &str, topic: &str) {
        let msg = format!("alive-{}", std::process::id());
        let mut sub = self.sub_one(to, topic);
        let start = Instant::now();
        let got = loop {
            let _ = self.publish(from, topic, &msg);
            if let Ok(Some(_)) = sub.try_wait() {
                break true;
            }
            if start.elapsed() > WAIT {
                let _ = sub.kill();
                break false;
            }
            std::thread::sleep(Duration::from_millis(300));
        };
        let out = sub.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            got && stdout.contains(&msg),
            "{from} -> {to} on {topic} not delivered: sub said {stdout:?} / {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

// ------------------------------------------------------------------------------------------
// A misbehaving device: rustls over a blocking socket, MQTT by mqttbytes.

struct RawDevice {
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    rbuf: BytesMut,
}

impl RawDevice {
    /// TLS handshake as `device` (no CONNECT yet), everything flushed.
    fn handshake(core: &Core, device: &str) -> std::io::Result<RawDevice> {
        let mut d = RawDevice::handshake_unflushed(core, device)?;
        while d.tls.conn.wants_write() {
            d.tls.conn.write_tls(&mut d.tls.sock)?;
        }
        Ok(d)
    }

    /// The handshake as far as the client's side is complete; its Finished may still be
    /// waiting in rustls.
    fn handshake_unflushed(core: &Core, device: &str) -> std::io::Result<RawDevice> {
        let p = &core.pki;
        let pem = |path: PathBuf| std::fs::read(path).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut &pem(p.crt("ca"))[..]) {
            roots.add(c.unwrap()).unwrap();
        }
        let chain: Vec<_> = rustls_pemfile::certs(&mut &pem(p.crt(device))[..])
            .map(|c| c.unwrap())
            .collect();
        let key = rustls_pemfile::private_key(&mut &pem(p.key(device))[..])
            .unwrap()
            .unwrap();
        let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
        let sock = TcpStream::connect(("127.0.0.1", core.port))?;
        sock.set_read_timeout(Some(Duration::from_secs(20)))?;
        sock.set_nodelay(true)?;
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, sock);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock)?;
        }
        Ok(RawDevice {
            tls,
            rbuf: BytesMut::new(),
        })
    }

    /// Like [`RawDevice::connect`], but the client's last handshake flight (its Finished) and
    /// the CONNECT leave in one TCP segment, as a client that writes right after the handshake
    /// (or any client under load) produces.
    fn connect_coalesced(core: &Core, device: &str) -> std::io::Result<Packet> {
        let mut d = RawDevice::handshake_unflushed(core, device)?;
        let mut c = v4::Connect::new(device);
        c.keep_alive = 600;
        let mut b = BytesMut::new();
        c.write(&mut b).unwrap();
        d.tls.conn.writer().write_all(&b)?;
        // One write_tls call: Finished and the CONNECT record go out together.
        while d.tls.conn.wants_write() {
            d.tls.conn.write_tls(&mut d.tls.sock)?;
        }
        d.read_packet()
    }

    fn send(&mut self, write: impl FnOnce(&mut BytesMut)) -> std::io::Result<()> {
        let mut b = BytesMut::new();
        write(&mut b);
        self.tls.write_all(&b)?;
        self.tls.flush()
    }

    fn read_packet(&mut self) -> std::io::Result<Packet> {
        loop {
            match v4::read(&mut self.rbuf, 1 << 20) {
                Ok(p) => return Ok(p),
                Err(mqttbytes::Error::InsufficientBytes(_)) => {}
                Err(e) => return Err(std::io::Error::other(format!("{e:?}"))),
            }
            let mut chunk = [0u8; 8192];
            let n = self.tls.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.rbuf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Handshake, CONNECT, CONNACK accepted.
    fn connect(core: &Core, device: &str) -> RawDevice {
        let mut d = RawDevice::handshake(core, device).expect("TLS handshake");
        let mut c = v4::Connect::new(device);
        c.keep_alive = 600;
        d.send(|b| {
            c.write(b).unwrap();
        })
        .unwrap();
        match d.read_packet().expect("CONNACK") {
            Packet::ConnAck(a) => assert_eq!(a.code, v4::ConnectReturnCode::Success, "{device}"),
            p => panic!("{device}: expected CONNACK, got {p:?}"),
        }
        d
    }

    fn subscribe(&mut self, filter: &str) {
        let mut s = v4::Subscribe::new(filter, QoS::AtMostOnce);
        s.pkid = 1;
        self.send(|b| {
            s.write(b).unwrap();
        })
        .unwrap();
        loop {
            if let Packet::SubAck(a) = self.read_packet().expect("SUBACK") {
                assert!(
                    matches!(a.return_codes[..], [v4::SubscribeReasonCode::Success(_)]),
                    "SUBSCRIBE {filter} refused"
                );
                return;
            }
        }
    }

    /// QoS 1 PUBLISH; returns once its PUBACK arrived.
    fn publish_acked(&mut self, topic: &str, pkid: u16, payload: &[u8]) -> std::io::Result<()> {
        let mut p = v4::Publish::new(topic, QoS::AtLeastOnce, payload.to_vec());
        p.pkid = pkid;
        self.send(|b| {
            p.write(b).unwrap();
        })?;
        loop {
            if let Packet::PubAck(a) = self.read_packet()? {
                if a.pkid == pkid {
                    return Ok(());
                }
            }
        }
    }

    fn publish_qos0(&mut self, topic: &str, payload: &[u8]) -> std::io::Result<()> {
        let p = v4::Publish::new(topic, QoS::AtMostOnce, payload.to_vec());
        self.send(|b| {
            p.write(b).unwrap();
        })
    }
}

fn daemon_fds(d: &Daemon) -> usize {
    fd_count(d.pid).unwrap_or(usize::MAX)
}

// ------------------------------------------------------------------------------------------

/// Devices that open TCP and never start TLS, start TLS and never finish it, or finish TLS and
/// never send CONNECT: a good device is still served while they hang, and once the handshake
/// and CONNECT timeouts pass the daemon has closed them (its fd count is back near where it
/// started) although the clients keep their ends open.
#[test]
fn slowloris_devices_are_timed_out_and_good_devices_served() {
    let core = Core::new("faults-slowloris", &["good-a", "good-b", "slow"]);
    core.configure(1024, None);
    core.group(
        &["good-a", "good-b", "slow"],
        &[("good-a", "faults/t", "good-b")],
        "",
    );
    let d = core.start();
    let baseline = daemon_fds(&d);

    let mut hanging: Vec<TcpStream> = Vec::new();
    for _ in 0..40 {
        hanging.push(TcpStream::connect(("127.0.0.1", core.port)).unwrap());
    }
    for _ in 0..40 {
        // The first bytes of a TLS ClientHello record header, then silence.
        let mut s = TcpStream::connect(("127.0.0.1", core.port)).unwrap();
        s.write_all(&[0x16, 0x03, 0x01, 0x02]).unwrap();
        hanging.push(s);
    }
    let mut no_connect = Vec::new();
    for _ in 0..20 {
        no_connect.push(RawDevice::handshake(&core, "slow").expect("TLS handshake"));
    }
    assert!(
        wait_until(WAIT, || daemon_fds(&d) >= baseline + 90),
        "the daemon did not accept the slow connections (fds {} from {baseline})",
        daemon_fds(&d)
    );

    core.assert_delivers("good-a", "good-b", "faults/t");

    let bounded = wait_until(WAIT, || daemon_fds(&d) <= baseline + 4);
    assert!(
        bounded,
        "slow connections still open in the daemon: {} fds, {baseline} at start",
        daemon_fds(&d)
    );
    core.assert_delivers("good-a", "good-b", "faults/t");
    drop((hanging, no_connect));
}

/// A device floods 10× `maxWorkItemCount` messages (three rounds) while one subscriber never
/// reads: the drops are counted in `sprig status`, RSS stays flat from round to round, and
/// afterwards good devices are still served.
#[test]
fn flood_at_ten_times_max_work_items_is_counted_and_rss_stays_flat() {
    const ITEMS: u32 = 128;
    let core = Core::new("faults-flood", &["flooder", "stalled", "good-a", "good-b"]);
    core.configure(ITEMS, None);
    core.group(
        &["flooder", "stalled", "good-a", "good-b"],
        &[
            ("flooder", "flood/t", "stalled"),
            ("flooder", "flood/t", "good-b"),
            ("good-a", "faults/t", "good-b"),
        ],
        "",
    );
    let d = core.start();
    let mut stalled = RawDevice::connect(&core, "stalled");
    stalled.subscribe("flood/t");
    // From here on `stalled` never reads: its outbound queue fills, the rest is dropped.
    let mut flooder = RawDevice::connect(&core, "flooder");
    // 8 KiB each: 10 MiB a round, more than the kernel's loopback socket buffers of the
    // stalled subscriber and its outbound queue together, so drops must happen.
    let payload = vec![0x42u8; 8 * 1024];
    let mut rss_after_round = Vec::new();
    for _round in 0..3 {
        for _ in 0..10 * ITEMS {
            flooder.publish_qos0("flood/t", &payload).expect("flood");
        }
        // A QoS 1 message after the burst: its PUBACK means the burst was read.
        flooder
            .publish_acked("flood/t", 7, b"end")
            .expect("PUBACK after the flood");
        rss_after_round.push(vm_rss_kb(d.pid).expect("daemon RSS"));
    }
    assert!(
        wait_until(WAIT, || core.counter("drops.slow_subscriber")
            + core.counter("drops.queue_full")
            > 0),
        "no drops counted after {} messages to a stalled subscriber: {:?}",
        30 * ITEMS,
        core.status()
    );
    let (first, last) = (rss_after_round[0], rss_after_round[2]);
    assert!(
        last <= first + 1024,
        "RSS grew from {first} KiB to {last} KiB between flood rounds: {rss_after_round:?}"
    );
    core.assert_delivers("good-a", "good-b", "faults/t");
    drop(stalled);
}

/// `kill -9` the daemon five times while a device publishes to another: every restart comes up
/// (stale pid file, half-written status file and all) and delivers.
#[test]
fn kill_9_during_traffic_then_restart_works_every_time() {
    let core = Core::new("faults-kill9", &["a", "b"]);
    core.configure(1024, None);
    core.group(&["a", "b"], &[("a", "faults/t", "b")], "");
    for round in 0..5 {
        let mut d = core.start();
        let mut sub = RawDevice::connect(&core, "b");
        sub.subscribe("faults/t");
        let mut pub_ = RawDevice::connect(&core, "a");
        // Traffic in flight when the kill lands: a burst without waiting.
        for i in 0..500u32 {
            if pub_
                .publish_qos0("faults/t", format!("r{round}-{i}").as_bytes())
                .is_err()
            {
                break;
            }
        }
        d.signal(libc::SIGKILL);
        assert!(
            d.wait_exit(WAIT).is_some(),
            "round {round}: SIGKILL did not end the daemon"
        );
        drop((sub, pub_));
    }
    let _d = core.start();
    core.assert_delivers("a", "b", "faults/t");
}

/// The FileSystem spool's environment for GGCloudSpooler.
const FS_SPOOL: &str =
    r#""GG_CONFIG_STORAGE_TYPE":"FileSystem","GG_CONFIG_MAX_SIZE_BYTES":"2621440""#;

/// The cloud stand-in (tests/cloud_peer: mosquitto, TLS, client certificates required,
/// persistence on) using this test's CA and server certificate.
fn cloud_for(core: &Core, label: &str) -> (cloud_peer::Dir, cloud_peer::Mosquitto) {
    let d = cloud_peer::Dir::new(label);
    let p = &core.pki;
    p.device("cloudclient");
    for (from, to) in [
        (p.crt("ca"), "ca.pem"),
        (p.crt("server"), "server.pem"),
        (p.key("server"), "server.key"),
        (p.crt("cloudclient"), "cloudclient.pem"),
        (p.key("cloudclient"), "cloudclient.key"),
    ] {
        std::fs::copy(&from, d.path(to)).unwrap();
    }
    let m = cloud_peer::Mosquitto::start(&d);
    (d, m)
}

/// The cloud broker is stopped and started again every 3 s while a device publishes QoS 1
/// messages routed to `cloud`, with the FileSystem spool: every message sprig acknowledged to
/// the device reaches the cloud subscriber (at least once).
#[test]
fn cloud_flapping_loses_nothing_acknowledged() {
    let core = Core::new("faults-flap", &["dev"]);
    let (d, mut m) = cloud_for(&core, "faults-flap");
    let _sub = cloud_peer::cloud_sub(&d, &m, "faults/cloud/#", "got.txt");
    core.configure(1024, Some(m.port));
    core.group(&["dev"], &[("dev", "faults/cloud/#", "cloud")], FS_SPOOL);
    let daemon = core.start();
    let mut dev = RawDevice::connect(&core, "dev");

    let mut acked = Vec::new();
    let mut up = true;
    let mut flaps = 0;
    let mut last_flap = Instant::now();
    for i in 0..200u16 {
        dev.publish_acked(
            &format!("faults/cloud/{i}"),
            i + 1,
            format!("m-{i}").as_bytes(),
        )
        .unwrap_or_else(|e| panic!("message {i} not acknowledged by the core: {e}"));
        acked.push(format!("faults/cloud/{i} m-{i}"));
        if last_flap.elapsed() >= Duration::from_secs(3) {
            if up {
                m.stop();
            } else {
                m.restart();
            }
            up = !up;
            flaps += 1;
            last_flap = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if !up {
        m.restart();
    }
    assert!(flaps >= 2, "the cloud broker flapped only {flaps} times");
    let all = wait_until(WAIT * 2, || {
        let got = cloud_peer::lines(&d, "got.txt");
        acked.iter().all(|a| got.contains(a))
    });
    let got = cloud_peer::dedup(&cloud_peer::lines(&d, "got.txt"));
    let missing: Vec<_> = acked.iter().filter(|a| !got.contains(a)).collect();
    assert!(
        all,
        "{} of {} acknowledged messages never reached the cloud ({flaps} flaps), first: {:?}\nstatus: {:?}\n{}",
        missing.len(),
        acked.len(),
        missing.first(),
        core.status(),
        daemon.output()
    );
}

/// A tmpfs mounted for a test, lazily unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The FileSystem spool's directory is a 1 MiB tmpfs and the cloud is unreachable, so 2 MiB of
/// cloud-bound messages fill the disk: the core stays up, keeps acknowledging and serving
/// devices, and counts what it could not write.
#[test]
fn disk_full_under_the_filesystem_spool_keeps_the_core_up() {
    let core = Core::new("faults-diskfull", &["dev", "a", "b"]);
    // Nobody listens there: everything cloud-bound stays in the spool.
    core.configure(1024, Some(free_port()));
    core.group(
        &["dev", "a", "b"],
        &[("dev", "up/#", "cloud"), ("a", "faults/t", "b")],
        FS_SPOOL,
    );
    let spool_dir = sprig::cloud::spool_dir(&core.root.write_dir());
    let _disk = match Tmpfs::mount(&spool_dir, "1m") {
        Ok(m) => m,
        Err(e) => {
            eprintln!("SKIPPED disk_full test: cannot mount a tmpfs here ({e}); needs root");
            return;
        }
    };
    let mut d = core.start();
    let mut dev = RawDevice::connect(&core, "dev");
    let payload = vec![0x33u8; 8 * 1024];
    for i in 0..256u16 {
        dev.publish_acked(&format!("up/{i}"), i + 1, &payload)
            .unwrap_or_else(|e| panic!("message {i}: the core stopped acknowledging: {e}"));
    }
    assert!(
        wait_until(WAIT, || core.counter("spool.dropped_io") > 0),
        "2 MiB into a 1 MiB disk and no spool write failure counted: {:?}",
        core.status()
    );
    assert!(d.try_wait().is_none(), "the core exited: {}", d.output());
    core.assert_delivers("a", "b", "faults/t");
}

/// Devices that send CONNECT right after their TLS Finished (in the same segment, or just
/// behind it while the broker is still in its handshake read) are answered: the broker takes
/// what rustls decrypted during the handshake before it waits on the socket again. Found by
/// the load generator; every such CONNECT used to wait for CONNECT_TIMEOUT_SECS and be refused.
#[test]
fn connect_right_behind_the_tls_finished_is_answered() {
    let core = Core::new("faults-coalesced", &["a"]);
    core.configure(1024, None);
    core.group(&["a"], &[], "");
    let _d = core.start();
    for i in 0..20 {
        match RawDevice::connect_coalesced(&core, "a") {
            Ok(Packet::ConnAck(a)) => assert_eq!(a.code, v4::ConnectReturnCode::Success),
            other => panic!("attempt {i} (one segment): expected CONNACK, got {other:?}"),
        }
        // Finished flushed on its own, CONNECT right behind it (what the load generator does).
        let mut d = RawDevice::handshake(&core, "a").expect("TLS handshake");
        let mut c = v4::Connect::new("a");
        c.keep_alive = 600;
        d.send(|b| {
            c.write(b).unwrap();
        })
        .unwrap();
        match d.read_packet() {
            Ok(Packet::ConnAck(a)) => assert_eq!(a.code, v4::ConnectReturnCode::Success),
            other => panic!("attempt {i} (right behind): expected CONNACK, got {other:?}"),
        }
    }
}
