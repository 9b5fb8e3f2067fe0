//! The cloud link against a real mosquitto standing in for AWS IoT Core: TLS listener that
//! requires client certificates (made with the openssl CLI), mosquitto_sub/pub as the cloud side.
//! These drive the library (`sprig::cloud`) directly; tests/cloud_e2e.rs goes through the daemon.

use std::cell::RefCell;
use std::fs;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::Duration;

use async_executor::LocalExecutor;
use bytes::Bytes;
use sprig::cloud::{Cloud, CloudSettings, LinkState};
use sprig::config::NetworkProxy;
use sprig::spool::Spool;

mod cloud_peer;
mod common;
use cloud_peer::*;

/// Like the daemon, this file runs `block_on` on one thread only (`harness = false`): `main`
/// runs the scenarios one after another on the main thread. (async-io is patched to have no
/// helper thread; `block_on` on several threads at once was where that hurt.)
/// `cargo test --test cloud NAME` runs the scenarios whose name contains NAME.
fn main() {
    if let Ok(args) = std::env::var("SPRIG_CLOUD_CHILD") {
        return spool_child(&args);
    }
    let scenarios: &[(&str, fn())] = &[
        (
            "device_to_cloud_and_cloud_to_device",
            device_to_cloud_and_cloud_to_device,
        ),
        (
            "outage_spools_and_delivers_everything_in_order",
            outage_spools_and_delivers_everything_in_order,
        ),
        (
            "spool_full_drops_oldest_and_counts",
            spool_full_drops_oldest_and_counts,
        ),
        (
            "persistent_session_gets_messages_sent_while_down",
            persistent_session_gets_messages_sent_while_down,
        ),
        (
            "wrong_server_ca_is_refused_and_retried",
            wrong_server_ca_is_refused_and_retried,
        ),
        ("alpn_offered_on_443_only", alpn_offered_on_443_only),
        (
            "through_http_connect_proxy_with_basic_auth",
            through_http_connect_proxy_with_basic_auth,
        ),
        (
            "through_https_proxy_tls_inside_tls",
            through_https_proxy_tls_inside_tls,
        ),
        (
            "more_than_fifty_filters_open_more_connections",
            more_than_fifty_filters_open_more_connections,
        ),
        (
            "no_proxy_addresses_bypass_the_proxy",
            no_proxy_addresses_bypass_the_proxy,
        ),
        (
            "kill_9_mid_burst_loses_nothing_spooled",
            kill_9_mid_burst_loses_nothing_spooled,
        ),
    ];
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut failed = Vec::new();
    for (name, f) in scenarios {
        if !filter.is_empty() && !filter.iter().any(|x| name.contains(x.as_str())) {
            continue;
        }
        let ok = std::panic::catch_unwind(f).is_ok();
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        if !ok {
            failed.push(*name);
        }
    }
    if !failed.is_empty() {
        eprintln!("failed: {failed:?}");
        std::process::exit(1);
    }
}

fn settings(d: &Dir, port: u16, filters: &[&str]) -> CloudSettings {
    CloudSettings {
        host: "localhost".into(),
        port,
        thing_name: "core".into(),
        keep_alive: 30,
        op_timeout: Duration::from_secs(5),
        max_retry: Duration::from_secs(2),
        proxy: None,
        ca: d.path("ca.pem"),
        cert: d.path("core.pem"),
        key: d.path("core.key"),
        persistent: false,
        filters: filters.iter().map(|s| s.to_string()).collect(),
        alpn: false,
        control: false,
    }
}

/// A cloud-side subscriber (persistent session, QoS 1), printing `topic payload` lines.
type Inbox = Rc<RefCell<Vec<(String, String)>>>;

fn start(ex: &LocalExecutor<'_>, s: CloudSettings, spool: Spool) -> (Cloud, Inbox) {
    let inbox: Inbox = Rc::default();
    let sink = inbox.clone();
    let cloud = Cloud::start(
        ex,
        s,
        spool,
        Box::new(move |t: &str, p: Bytes| {
            sink.borrow_mut()
                .push((t.to_owned(), String::from_utf8_lossy(&p).into_owned()));
            true
        }),
    );
    (cloud, inbox)
}

fn connected(c: &Cloud) -> bool {
    c.status()
        .connections
        .iter()
        .all(|c| c.state == LinkState::Connected)
}

fn device_to_cloud_and_cloud_to_device() {
    let d = Dir::new("both");
    certs(&d.0);
    let m = Mosquitto::start(&d);
    let _sub = cloud_sub(&d, &m, "up/#", "sub.out");
    let ex = LocalExecutor::new();
    let (cloud, inbox) = start(
        &ex,
        settings(&d, m.port, &["down/#"]),
        Spool::memory(1 << 20),
    );
    async_io::block_on(ex.run(async {
        assert!(
            wait_until(|| m.log().contains("Received SUBSCRIBE from core-c00")).await,
            "{:?}",
            cloud.status()
        );
        for i in 0..100 {
            cloud.publish("up/a", Bytes::from(i.to_string())).unwrap();
        }
        assert!(
            wait_until(|| lines(&d, "sub.out").len() >= 100).await,
            "{:?}",
            lines(&d, "sub.out")
        );
        assert_eq!(dedup(&lines(&d, "sub.out")), expected("a", 100));
        assert!(wait_until(|| cloud.status().spool.messages == 0).await);
        assert_eq!(cloud.status().published, 100);
        cloud_pub(&d, &m, "down/x", "hello", "1");
        assert!(wait_until(|| !inbox.borrow().is_empty()).await);
        assert_eq!(
            inbox.borrow()[0],
            ("down/x".to_string(), "hello".to_string())
        );
        let st = cloud.status();
        assert_eq!(st.connections[0].client_id, "core-c00");
        assert_eq!(st.connections[0].alpn, None, "no ALPN off port 443");
    }));
}

fn outage_spools_and_delivers_everything_in_order() {
    let d = Dir::new("outage");
    certs(&d.0);
    let mut m = Mosquitto::start(&d);
    let _sub = cloud_sub(&d, &m, "up/#", "sub.out");
    let ex = LocalExecutor::new();
    let (cloud, _) = start(&ex, settings(&d, m.port, &[]), Spool::memory(1 << 20));
    async_io::block_on(ex.run(async {
        assert!(wait_until(|| connected(&cloud)).await);
        m.stop();
        assert!(
            wait_until(|| !connected(&cloud)).await,
            "link noticed the outage"
        );
        for i in 0..300 {
            cloud.publish("up/o", Bytes::from(i.to_string())).unwrap();
        }
        // Let a few reconnect attempts fail.
        assert!(wait_until(|| cloud.status().connections[0].failures >= 2).await);
        assert_eq!(cloud.status().spool.messages, 300);
        m.restart();
        assert!(
            wait_until(|| cloud.status().spool.messages == 0).await,
            "{:?}",
            cloud.status()
        );
        assert!(
            wait_until(|| dedup(&lines(&d, "sub.out")).len() >= 300).await,
            "{}",
            lines(&d, "sub.out").len()
        );
        assert_eq!(dedup(&lines(&d, "sub.out")), expected("o", 300));
    }));
}

fn spool_full_drops_oldest_and_counts() {
    let d = Dir::new("full");
    certs(&d.0);
    let mut m = Mosquitto::start(&d);
    let _sub = cloud_sub(&d, &m, "up/#", "sub.out");
    m.stop();
    let ex = LocalExecutor::new();
    let budget = 262_144u64;
    let (cloud, _) = start(&ex, settings(&d, m.port, &[]), Spool::memory(budget));
    let payload = |i: usize| format!("{i} {}", "x".repeat(1000));
    async_io::block_on(ex.run(async {
        for i in 0..1000 {
            cloud.publish("up/f", Bytes::from(payload(i))).unwrap();
        }
        let st = cloud.status();
        let kept = st.spool.messages as usize;
        assert!(st.spool.bytes <= budget);
        assert_eq!(st.spool.dropped_full as usize, 1000 - kept);
        assert!(kept > 200 && kept < 260, "{kept}");
        assert!(st
            .lines()
            .iter()
            .any(|l| l.contains(&format!("full {}", 1000 - kept))));
        m.restart();
        assert!(wait_until(|| cloud.status().spool.messages == 0).await);
        let want: Vec<String> = (1000 - kept..1000)
            .map(|i| format!("up/f {}", payload(i)))
            .collect();
        assert!(wait_until(|| dedup(&lines(&d, "sub.out")).len() >= kept).await);
        assert_eq!(
            dedup(&lines(&d, "sub.out")),
            want,
            "the newest survive, in order"
        );
    }));
}

fn persistent_session_gets_messages_sent_while_down() {
    let d = Dir::new("persist");
    certs(&d.0);
    let m = Mosquitto::start(&d);
    let mut s = settings(&d, m.port, &["down/#"]);
    s.persistent = true;
    {
        let ex = LocalExecutor::new();
        let (_cloud, _) = start(&ex, s.clone(), Spool::memory(1 << 20));
        async_io::block_on(ex.run(wait_until(|| {
            m.log().contains("Received SUBSCRIBE from core-c00")
        })));
        // Dropping the executor drops the tasks and closes the connection.
    }
    assert!(block_wait(|| m
        .log()
        .contains("Client core-c00 closed its connection")
        || m.log().contains("Client core-c00 disconnected")));
    for i in 0..5 {
        cloud_pub(&d, &m, "down/p", &i.to_string(), "1");
    }
    let ex = LocalExecutor::new();
    let (_cloud, inbox) = start(&ex, s, Spool::memory(1 << 20));
    async_io::block_on(ex.run(async {
        assert!(
            wait_until(|| inbox.borrow().len() >= 5).await,
            "{:?}",
            inbox.borrow()
        );
    }));
    let got: Vec<String> = inbox.borrow().iter().map(|(_, p)| p.clone()).collect();
    assert_eq!(got, ["0", "1", "2", "3", "4"]);
    assert!(
        m.log().contains("core-c00 (p2, c0, k30, u'core')"),
        "cleanSession=0 in CONNECT"
    );
}

fn wrong_server_ca_is_refused_and_retried() {
    let d = Dir::new("wrongca");
    certs(&d.0);
    let m = Mosquitto::start(&d);
    let mut s = settings(&d, m.port, &[]);
    s.ca = d.path("otherca.pem");
    let ex = LocalExecutor::new();
    let (cloud, _) = start(&ex, s, Spool::memory(1 << 20));
    cloud.publish("up/x", Bytes::from_static(b"1")).unwrap();
    async_io::block_on(ex.run(async {
        assert!(wait_until(|| cloud.status().connections[0].failures >= 3).await);
    }));
    let st = cloud.status();
    let c = &st.connections[0];
    assert_ne!(c.state, LinkState::Connected);
    assert!(c.last_error.contains("UnknownIssuer"), "{}", c.last_error);
    assert_eq!(c.sessions, 0);
    assert_eq!(st.spool.messages, 1, "nothing leaves the spool");
}

fn alpn_offered_on_443_only() {
    let d = Dir::new("alpn");
    certs(&d.0);
    // openssl s_server selects x-amzn-mqtt-ca when the client offers it. It cannot speak MQTT,
    // so the session fails after the handshake; the negotiated protocol is what we check.
    // Port 443 on a loopback address when we may bind it, else the same check with ALPN forced.
    let host = "127.0.0.1";
    let port = if TcpListener::bind((host, 443)).is_ok() {
        443
    } else {
        free_port()
    };
    let server = Proc(
        Command::new("openssl")
            .args([
                "s_server",
                "-accept",
                &format!("{host}:{port}"),
                "-alpn",
                "x-amzn-mqtt-ca",
                "-Verify",
                "1",
            ])
            .args([
                "-cert",
                "server.pem",
                "-key",
                "server.key",
                "-CAfile",
                "ca.pem",
            ])
            .current_dir(&d.0)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert!(block_wait(
        || std::net::TcpStream::connect((host, port)).is_ok()
    ));
    let mut s = settings(&d, port, &[]);
    s.host = host.into();
    s.alpn = port == 443;
    if port != 443 {
        s.alpn = true;
    }
    let ex = LocalExecutor::new();
    let (cloud, _) = start(&ex, s, Spool::memory(1 << 20));
    async_io::block_on(ex.run(async {
        assert!(
            wait_until(|| cloud.status().connections[0].alpn.is_some()).await,
            "{:?}",
            cloud.status()
        );
    }));
    assert_eq!(
        cloud.status().connections[0].alpn.as_deref(),
        Some("x-amzn-mqtt-ca")
    );
    drop(server);
}

/// tinyproxy with Basic auth, allowed to CONNECT to `port`.
fn tinyproxy(d: &Dir, port: u16) -> (Proc, u16) {
    let pport = free_port();
    fs::write(
        d.path("tinyproxy.conf"),
        format!(
            "User root\nGroup root\nPort {pport}\nListen 127.0.0.1\nTimeout 60\nLogFile \"{}\"\nLogLevel Info\n\
             MaxClients 10\nAllow 127.0.0.1\nBasicAuth sprig s3cret\nConnectPort {port}\n",
            d.path("tinyproxy.log").display()
        ),
    )
    .unwrap();
    let child = Command::new("tinyproxy")
        .arg("-d")
        .arg("-c")
        .arg(d.path("tinyproxy.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let p = Proc(child);
    assert!(
        block_wait(|| std::net::TcpStream::connect(("127.0.0.1", pport)).is_ok()),
        "tinyproxy did not start"
    );
    (p, pport)
}

fn proxy_settings(pport: u16, user: &str, pass: &str, no_proxy: &[&str]) -> NetworkProxy {
    NetworkProxy {
        url: format!("http://127.0.0.1:{pport}"),
        tls: false,
        host: "127.0.0.1".into(),
        port: pport,
        username: Some(user.into()),
        password: Some(pass.into()),
        no_proxy_addresses: no_proxy.iter().map(|s| s.to_string()).collect(),
    }
}

fn through_http_connect_proxy_with_basic_auth() {
    let d = Dir::new("proxy");
    certs(&d.0);
    let m = Mosquitto::start(&d);
    let _sub = cloud_sub(&d, &m, "up/#", "sub.out");
    let (_tp, pport) = tinyproxy(&d, m.port);
    let proxy_log = || fs::read_to_string(d.path("tinyproxy.log")).unwrap_or_default();

    // Wrong password: refused by the proxy, reported, retried.
    let mut s = settings(&d, m.port, &[]);
    s.proxy = Some(proxy_settings(pport, "sprig", "wrong", &[]));
    let ex = LocalExecutor::new();
    let (cloud, _) = start(&ex, s.clone(), Spool::memory(1 << 20));
    async_io::block_on(ex.run(wait_until(|| cloud.status().connections[0].failures >= 2)));
    assert!(
        cloud.status().connections[0]
            .last_error
            .contains("refused the credentials"),
        "{:?}",
        cloud.status()
    );
    drop(ex);

    s.proxy = Some(proxy_settings(pport, "sprig", "s3cret", &[]));
    let ex = LocalExecutor::new();
    let (cloud, _) = start(&ex, s, Spool::memory(1 << 20));
    async_io::block_on(ex.run(async {
        for i in 0..10 {
            cloud.publish("up/p", Bytes::from(i.to_string())).unwrap();
        }
        assert!(
            wait_until(|| dedup(&lines(&d, "sub.out")).len() >= 10).await,
            "{:?}",
            cloud.status()
        );
    }));
    assert_eq!(dedup(&lines(&d, "sub.out")), expected("p", 10));
    assert!(
        proxy_log().contains(&format!("localhost:{}", m.port)),
        "went through the proxy:\n{}",
        proxy_log()
    );
}

fn no_proxy_addresses_bypass_the_proxy() {
    let d = Dir::new("noproxy");
    certs(&d.0);
    let m = Mosquitto::start(&d);
    let _sub = cloud_sub(&d, &m, "up/#", "sub.out");
    // A proxy that does not exist: only a bypass can work.
    let mut s = settings(&d, m.port, &[]);
    s.proxy = Some(proxy_settings(free_port(), "u", "p", &["http://LOCALHOST"]));
    let ex = LocalExecutor::new();
    let (cloud, _) = start(&ex, s, Spool::memory(1 << 20));
    async_io::block_on(ex.run(async {
        cloud.publish("up/n", Bytes::from_static(b"0")).unwrap();
        assert!(
            wait_until(|| !lines(&d, "sub.out").is_empty()).await,
            "{:?}",
            cloud.status()
        );
    }));
}

/// Child process for the kill -9 scenario: a FileSystem spool and the cloud link; publishes
/// `count` messages, printing `spooled N` once each is in the spool (what a device's PUBACK
/// would promise), then keeps running until killed.
fn spool_child(args: &str) {
    use std::io::Write;
    let mut it = args.split(',');
    let dir = PathBuf::from(it.next().unwrap());
    let port: u16 = it.next().unwrap().parse().unwrap();
    let count: usize = it.next().unwrap().parse().unwrap();
    let d = Dir(dir.clone());
    let spool = Spool::open(&dir.join("spool"), 2_621_440).unwrap();
    let ex = LocalExecutor::new();
    let (cloud, _) = start(&ex, settings(&d, port, &[]), spool);
    std::mem::forget(d); // the parent owns the directory
    async_io::block_on(ex.run(async {
        let mut out = std::io::stdout();
        for i in 0..count {
            cloud.publish("up/k", Bytes::from(i.to_string())).unwrap();
            writeln!(out, "spooled {i}").unwrap();
            out.flush().unwrap();
            if i % 50 == 0 {
                async_io::Timer::after(Duration::from_millis(1)).await;
            }
        }
        futures_lite::future::pending::<()>().await;
    }));
}

fn kill_9_mid_burst_loses_nothing_spooled() {
    let d = Dir::new("kill9");
    certs(&d.0);
    let mut m = Mosquitto::start(&d);
    let _sub = cloud_sub(&d, &m, "up/#", "sub.out");
    // Broker down during the burst, so the spool holds it all and kill -9 hits mid-write.
    m.stop();
    let port = m.port;
    let child = |count: usize, out: &str| {
        Proc(
            Command::new(std::env::current_exe().unwrap())
                .env(
                    "SPRIG_CLOUD_CHILD",
                    format!("{},{},{count}", d.0.display(), port),
                )
                .stdout(fs::File::create(d.path(out)).unwrap())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let mut burst = child(20_000, "child1.out");
    assert!(block_wait(|| lines(&d, "child1.out").len() >= 2000));
    let _ = burst.0.kill(); // SIGKILL
    let _ = burst.0.wait();
    let promised = lines(&d, "child1.out")
        .iter()
        .filter(|l| l.starts_with("spooled "))
        .count();
    assert!(promised < 20_000, "killed mid-burst");
    m.restart();
    let _drain = child(0, "child2.out");
    let want = expected("k", promised);
    assert!(
        block_wait(|| dedup(&lines(&d, "sub.out")).len() >= promised),
        "{} of {promised} arrived",
        dedup(&lines(&d, "sub.out")).len()
    );
    let got = dedup(&lines(&d, "sub.out"));
    assert_eq!(
        &got[..promised],
        &want[..],
        "every spooled message, in order"
    );
}

/// An https:// proxy: tinyproxy behind a TLS terminator (tests/tls_forward.py, Python stdlib),
/// certificate signed by the test CA. The MQTT TLS runs inside the proxy's TLS.
fn through_https_proxy_tls_inside_tls() {
    let d = Dir::new("httpsproxy");
    certs(&d.0);
    let m = Mosquitto::start(&d);
    let _sub = cloud_sub(&d, &m, "up/#", "sub.out");
    let (_tp, pport) = tinyproxy(&d, m.port);
    let tport = free_port();
    let _fwd = Proc(
        Command::new("python3")
            .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/tls_forward.py"))
            .arg(tport.to_string())
            .arg(d.path("server.pem"))
            .arg(d.path("server.key"))
            .arg(pport.to_string())
            .stdout(fs::File::create(d.path("fwd.out")).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert!(block_wait(|| fs::read_to_string(d.path("fwd.out"))
        .unwrap_or_default()
        .contains("ready")));
    let mut s = settings(&d, m.port, &[]);
    let mut p = proxy_settings(tport, "sprig", "s3cret", &[]);
    p.url = format!("https://localhost:{tport}");
    p.tls = true;
    p.host = "localhost".into();
    s.proxy = Some(p);
    let ex = LocalExecutor::new();
    let (cloud, _) = start(&ex, s, Spool::memory(1 << 20));
    async_io::block_on(ex.run(async {
        for i in 0..10 {
            cloud.publish("up/s", Bytes::from(i.to_string())).unwrap();
        }
        assert!(
            wait_until(|| dedup(&lines(&d, "sub.out")).len() >= 10).await,
            "{:?}",
            cloud.status()
        );
    }));
    assert_eq!(dedup(&lines(&d, "sub.out")), expected("s", 10));
    let log = fs::read_to_string(d.path("tinyproxy.log")).unwrap_or_default();
    assert!(log.contains(&format!("localhost:{}", m.port)), "{log}");
}

/// 120 cloud-sourced filters: `-c00` and `-c01` carry 50 each, `-c02` the last 20.
fn more_than_fifty_filters_open_more_connections() {
    let d = Dir::new("manyfilters");
    certs(&d.0);
    let m = Mosquitto::start(&d);
    let filters: Vec<String> = (0..120).map(|i| format!("f/{i}")).collect();
    let refs: Vec<&str> = filters.iter().map(String::as_str).collect();
    let ex = LocalExecutor::new();
    let (cloud, inbox) = start(&ex, settings(&d, m.port, &refs), Spool::memory(1 << 20));
    async_io::block_on(ex.run(async {
        assert!(
            wait_until(|| connected(&cloud)).await,
            "{:?}",
            cloud.status()
        );
        assert!(wait_until(|| m.log().contains("Received SUBSCRIBE from core-c02")).await);
        for f in ["f/0", "f/49", "f/50", "f/119"] {
            cloud_pub(&d, &m, f, f, "0");
        }
        assert!(
            wait_until(|| inbox.borrow().len() >= 4).await,
            "{:?}",
            inbox.borrow()
        );
    }));
    let ids: Vec<String> = cloud
        .status()
        .connections
        .iter()
        .map(|c| c.client_id.clone())
        .collect();
    assert_eq!(ids, ["core-c00", "core-c01", "core-c02"]);
    let mut got: Vec<String> = inbox.borrow().iter().map(|(t, _)| t.clone()).collect();
    got.sort();
    assert_eq!(got, ["f/0", "f/119", "f/49", "f/50"]);
    // mosquitto logs each granted filter as `<client id> <qos> <filter>`.
    let log = m.log();
    let count = |id: &str| {
        log.lines()
            .filter(|l| l.contains(&format!("{id} 0 f/")))
            .count()
    };
    assert_eq!(
        (count("core-c00"), count("core-c01"), count("core-c02")),
        (50, 50, 20),
        "{log}"
    );
}
