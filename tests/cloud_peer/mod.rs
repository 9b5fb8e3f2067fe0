//! The cloud side of the cloud tests: certificates made with the openssl CLI, a mosquitto with
//! a TLS listener that requires client certificates (standing in for AWS IoT Core), and
//! mosquitto_sub/pub as cloud clients. Shared by tests/cloud.rs, tests/cloud_e2e.rs and tests/jobs.rs.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// Both test crates that use this module declare `mod common;` too.
pub use crate::common::free_port;
use crate::common::openssl_in as openssl;

pub const WAIT: Duration = Duration::from_secs(60);

pub struct Dir(pub PathBuf);
impl Dir {
    pub fn new(name: &str) -> Dir {
        let p = std::env::temp_dir().join(format!("sprig-cloud-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        Dir(p)
    }
    pub fn path(&self, f: &str) -> PathBuf {
        self.0.join(f)
    }
}
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Kills the child when dropped, so a failing test leaves no broker behind.
pub struct Proc(pub Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `<name>.key`: a new EC P-256 key.
fn ec_key(dir: &Path, name: &str) {
    let out = format!("{name}.key");
    openssl(
        dir,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            &out,
        ],
    );
}

/// A CA and a certificate signed by it (EC P-256).
pub fn issue(dir: &Path, ca: &str, name: &str, cn: &str, san: Option<&str>) {
    ec_key(dir, name);
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            &format!("{name}.key"),
            "-subj",
            &format!("/CN={cn}"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    let ext = format!("{name}.ext");
    let mut text = "basicConstraints=CA:FALSE\n".to_string();
    if let Some(san) = san {
        text.push_str(&format!("subjectAltName={san}\n"));
    }
    fs::write(dir.join(&ext), text).unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

pub fn make_ca(dir: &Path, name: &str) {
    ec_key(dir, name);
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            &format!("{name}.key"),
            "-subj",
            &format!("/CN={name}"),
            "-days",
            "2",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

/// Certificates for a test: `ca` signs the server ("localhost", 127.0.0.1), the core and a
/// cloud-side client; `otherca` signs nothing we use (the wrong CA).
pub fn certs(dir: &Path) {
    make_ca(dir, "ca");
    make_ca(dir, "otherca");
    issue(
        dir,
        "ca",
        "server",
        "localhost",
        Some("DNS:localhost,IP:127.0.0.1"),
    );
    issue(dir, "ca", "core", "core", None);
    issue(dir, "ca", "cloudclient", "cloudclient", None);
}

/// mosquitto with a TLS listener that requires client certificates, persistence on.
pub struct Mosquitto {
    pub port: u16,
    conf: PathBuf,
    log: PathBuf,
    proc: Option<Proc>,
}

impl Mosquitto {
    pub fn start(d: &Dir) -> Mosquitto {
        let port = free_port();
        let conf = d.path("mosquitto.conf");
        let log = d.path("mosquitto.log");
        let p = |f: &str| d.path(f).display().to_string();
        fs::write(
            &conf,
            format!(
                "user root\nlistener {port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n\
                 use_identity_as_username true\nallow_anonymous true\npersistence true\npersistence_location {}/\n\
                 autosave_interval 1\nlog_dest file {}\nlog_type all\nmax_queued_messages 100000\n",
                p("ca.pem"),
                p("server.pem"),
                p("server.key"),
                d.0.display(),
                log.display()
            ),
        )
        .unwrap();
        let mut m = Mosquitto {
            port,
            conf,
            log,
            proc: None,
        };
        m.restart();
        m
    }

    pub fn restart(&mut self) {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.proc = Some(Proc(child));
        let port = self.port;
        assert!(
            block_wait(|| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()),
            "mosquitto did not start"
        );
    }

    /// Stops the broker (SIGTERM, so it saves its sessions).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            unsafe_term(p.0.id());
            let _ = p.0.wait();
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

pub fn unsafe_term(pid: u32) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
}

pub fn block_wait(mut cond: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < WAIT {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Polls `cond` on the executor (so the cloud tasks run meanwhile).
pub async fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < WAIT {
        if cond() {
            return true;
        }
        async_io::Timer::after(Duration::from_millis(50)).await;
    }
    false
}

pub fn cloud_sub(d: &Dir, m: &Mosquitto, topic: &str, out: &str) -> Proc {
    // stdbuf: mosquitto_sub block-buffers stdout into a file; we poll it line by line.
    let child = Command::new("stdbuf")
        .args(["-oL", "mosquitto_sub"])
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &m.port.to_string(),
            "-q",
            "1",
            "-c",
            "-i",
            "cloudsub",
            "-v",
            "-t",
            topic,
        ])
        .args(cloud_client_tls(d))
        .stdout(fs::File::create(d.path(out)).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let p = Proc(child);
    assert!(
        block_wait(|| m.log().contains("Received SUBSCRIBE from cloudsub")),
        "subscriber did not subscribe"
    );
    p
}

/// `--cafile`, `--cert`, `--key` of the cloud-side test client.
fn cloud_client_tls(d: &Dir) -> [PathBuf; 6] {
    [
        "--cafile".into(),
        d.path("ca.pem"),
        "--cert".into(),
        d.path("cloudclient.pem"),
        "--key".into(),
        d.path("cloudclient.key"),
    ]
}

pub fn cloud_pub(d: &Dir, m: &Mosquitto, topic: &str, payload: &str, qos: &str) {
    let ok = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &m.port.to_string(),
            "-q",
            qos,
            "-t",
            topic,
            "-m",
            payload,
        ])
        .args(cloud_client_tls(d))
        .status()
        .unwrap();
    assert!(ok.success());
}

pub fn lines(d: &Dir, f: &str) -> Vec<String> {
    fs::read_to_string(d.path(f))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// First occurrences, in order (at-least-once allows duplicates).
pub fn dedup(v: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    v.iter()
        .filter(|l| seen.insert(l.to_string()))
        .cloned()
        .collect()
}

pub fn expected(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("up/{prefix} {i}")).collect()
}

/// Points a test root's cloud link at the mosquitto on `port`: the cloud CA and the core's
/// identity from `d` as the legacy cert paths (root.ca.pem, core.cert.pem, core.private.key),
/// iotHost localhost, mqttMaxConnectionRetryInterval 2 s.
pub fn use_cloud(root: &crate::common::TestRoot, d: &Dir, port: u16) {
    use_cloud_retrying(root, d, port, 2);
}

/// [`use_cloud`] with mqttMaxConnectionRetryInterval `retry_secs`.
pub fn use_cloud_retrying(root: &crate::common::TestRoot, d: &Dir, port: u16, retry_secs: u32) {
    install_cloud_certs(root, d);
    let config = cloud_config(&root.default_config(), port).replace(
        r#""managedRespawn": false,"#,
        &format!(r#""managedRespawn": false, "mqttMaxConnectionRetryInterval": {retry_secs},"#),
    );
    root.write_config(&config);
}

/// The cloud CA and the core's identity from `d` as the root's legacy cert paths
/// (root.ca.pem, core.cert.pem, core.private.key).
pub fn install_cloud_certs(root: &crate::common::TestRoot, d: &Dir) {
    let certs = root.certs();
    fs::copy(d.path("ca.pem"), certs.join("root.ca.pem")).unwrap();
    fs::copy(d.path("core.pem"), certs.join("core.cert.pem")).unwrap();
    fs::copy(d.path("core.key"), certs.join("core.private.key")).unwrap();
}

/// `config` (a test root's config.json text) with iotHost localhost and iotMqttPort `port`.
pub fn cloud_config(config: &str, port: u16) -> String {
    config.replace(
        r#""iotHost": "none","#,
        &format!(r#""iotHost": "localhost", "iotMqttPort": {port},"#),
    )
}
