//! sprig-loadgen: drives an MQTT broker (sprig or mosquitto) with TLS client-certificate devices
//! on loopback and prints one JSON line per scenario run. scripts/bench.sh runs it and writes
//! BENCHMARKS.md. Threads are fine here: this is a dev tool, not the daemon.
//!
//! Broker cost is read from /proc/PID (CPU seconds = utime + stime, VmRSS, VmHWM) of `--pid`.

mod client;
mod group;
mod procstat;

use std::collections::HashMap;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use mqttbytes::v4::Packet;
use mqttbytes::QoS;

use client::{Client, Target};
use group::*;

const USAGE: &str = "\
usage: sprig-loadgen <command> [--option value]...

common options: --addr 127.0.0.1:8883  --certs DIR (ca.crt, dev-NNNN.crt/.key)
                --pid BROKER_PID  --keep-alive 300  --payload 64 (bytes)

commands:
  group    --devices N [--scenarios 1] [--route 0] [--noise 0] [--shadow 0]
                                                    print a sprig group.json
  stat     --pid P                                  broker RSS, HWM, CPU seconds, fds
  idle     --connections N [--hold 2] [--first 100] hold N TLS devices (dev-0100 and up)
  fanin    --publishers K --messages M --qos 0|1 [--window 32] [--topic bench/fanin]
           [--noise-subs N]                         K publishers -> 1 subscriber, as fast as possible
  latency  --rate R --secs S                        1 -> 1 at a fixed rate, p50/p99
  fanout   --subscribers N --rate R --secs S        1 -> N at a fixed rate
  coldstart [--timeout 30] -- CMD ARGS...          spawn a broker, time to the first CONNACK
  shadow   --publishers K --messages M              sprig only: K devices each update their
                                                    own shadow M times, one request at a time
";

type Args = HashMap<String, String>;

fn parse_args(argv: &[String]) -> Result<(Args, Vec<String>), String> {
    let mut args = Args::new();
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            return Ok((args, it.cloned().collect()));
        }
        let key = a
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument {a:?}"))?;
        let val = it.next().ok_or_else(|| format!("--{key} needs a value"))?;
        args.insert(key.to_string(), val.clone());
    }
    Ok((args, Vec::new()))
}

fn get<T: std::str::FromStr>(args: &Args, key: &str, default: Option<T>) -> Result<T, String> {
    match args.get(key) {
        Some(v) => v
            .parse()
            .map_err(|_| format!("--{key}: cannot parse {v:?}")),
        None => default.ok_or_else(|| format!("--{key} is required")),
    }
}

fn target(args: &Args) -> Result<Target, String> {
    Ok(Target {
        addr: get(args, "addr", Some("127.0.0.1:8883".parse().unwrap()))?,
        certs: get(args, "certs", None::<String>)?.into(),
        keep_alive: get(args, "keep-alive", Some(300))?,
    })
}

/// Raise the open-file limit to the hard limit: 1,000 idle connections need more than 1,024.
fn raise_nofile() {
    // SAFETY: plain libc calls on a local struct.
    unsafe {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

/// Broker cost snapshot; zeros when no `--pid` was given.
#[derive(Clone, Copy, Default)]
struct Cost {
    cpu: f64,
    rss: u64,
    hwm: u64,
}

fn cost(pid: Option<u32>) -> Cost {
    let Some(pid) = pid else {
        return Cost::default();
    };
    let cpu = procstat::cpu_secs(pid).unwrap_or(f64::NAN);
    let (rss, hwm) = procstat::rss_kib(pid).unwrap_or((0, 0));
    Cost { cpu, rss, hwm }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn connect(t: &Target, idx: usize) -> Result<Client, String> {
    Client::connect(t, idx, Duration::from_secs(10))
        .map_err(|e| format!("{}: {e}", client::device_name(idx)))
}

fn subscribe(c: &mut Client, filters: &[String]) -> Result<(), String> {
    let codes = c.subscribe(1, filters).map_err(|e| e.to_string())?;
    if let Some(i) = codes.iter().position(|&c| c == 0x80) {
        return Err(format!(
            "{}: SUBSCRIBE {} refused (0x80)",
            c.name, filters[i]
        ));
    }
    Ok(())
}

/// Nanoseconds since `epoch`, in the first 8 bytes of a payload of `len` bytes.
fn stamped(epoch: Instant, len: usize) -> Vec<u8> {
    let mut p = vec![0x5a; len.max(8)];
    p[..8].copy_from_slice(&(epoch.elapsed().as_nanos() as u64).to_le_bytes());
    p
}

fn stamp_age_us(epoch: Instant, payload: &[u8]) -> Option<u64> {
    let sent = u64::from_le_bytes(payload.get(..8)?.try_into().ok()?);
    Some((epoch.elapsed().as_nanos() as u64).saturating_sub(sent) / 1000)
}

/// What one subscriber saw.
struct Received {
    count: u64,
    last: Option<Instant>,
    latencies_us: Vec<u64>,
}

/// Reads PUBLISHes on `topic` until `expected` arrived, or `done` is set and nothing came for
/// `idle`, or `deadline` passes.
fn receive(
    mut c: Client,
    topic: &str,
    expected: u64,
    epoch: Option<Instant>,
    done: &AtomicBool,
    idle: Duration,
    deadline: Instant,
) -> Result<Received, String> {
    c.set_read_timeout(Duration::from_millis(100))
        .map_err(|e| e.to_string())?;
    let mut r = Received {
        count: 0,
        last: None,
        latencies_us: Vec::new(),
    };
    let mut quiet_since = Instant::now();
    while r.count < expected && Instant::now() < deadline {
        match c.read_packet() {
            Ok(Some(Packet::Publish(p))) if p.topic == topic => {
                r.count += 1;
                let now = Instant::now();
                r.last = Some(now);
                quiet_since = now;
                if let Some(e) = epoch {
                    if let Some(us) = stamp_age_us(e, &p.payload) {
                        r.latencies_us.push(us);
                    }
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                if done.load(Ordering::Acquire) && quiet_since.elapsed() >= idle {
                    break;
                }
            }
            Err(e) => return Err(format!("{}: {e}", c.name)),
        }
        if !done.load(Ordering::Acquire) {
            quiet_since = Instant::now();
        }
    }
    c.disconnect();
    Ok(r)
}

/// Publishes `count` messages; QoS 1 keeps at most `window` unacknowledged. `rate` 0 = unpaced.
/// Returns (sent, acknowledged).
#[allow(clippy::too_many_arguments)]
fn publish(
    mut c: Client,
    topic: &str,
    qos: QoS,
    count: u64,
    rate: f64,
    window: u32,
    payload_len: usize,
    epoch: Instant,
) -> Result<(u64, u64), String> {
    let start = Instant::now();
    let (mut sent, mut acked, mut inflight, mut pkid) = (0u64, 0u64, 0u32, 0u16);
    let name = c.name.clone();
    let err = |e: std::io::Error| format!("{name}: {e}");
    let drain =
        |c: &mut Client, inflight: &mut u32, acked: &mut u64, until: u32| -> Result<(), String> {
            let deadline = Instant::now() + Duration::from_secs(30);
            while *inflight > until {
                match c.read_packet().map_err(err)? {
                    Some(Packet::PubAck(_)) => {
                        *inflight -= 1;
                        *acked += 1;
                    }
                    Some(_) => {}
                    None if Instant::now() > deadline => {
                        return Err(format!("{name}: PUBACKs stopped"))
                    }
                    None => {}
                }
            }
            Ok(())
        };
    while sent < count {
        if rate > 0.0 {
            let due = start + Duration::from_secs_f64(sent as f64 / rate);
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
        }
        pkid = pkid.checked_add(1).unwrap_or(1);
        c.publish(topic, qos, pkid, &stamped(epoch, payload_len))
            .map_err(err)?;
        sent += 1;
        if qos != QoS::AtMostOnce {
            inflight += 1;
            if inflight >= window {
                drain(&mut c, &mut inflight, &mut acked, window / 2)?;
            }
        }
    }
    if qos != QoS::AtMostOnce {
        drain(&mut c, &mut inflight, &mut acked, 0)?;
    }
    c.disconnect();
    Ok((sent, acked))
}

fn json_line(fields: &[(&str, String)]) -> String {
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    format!("{{{}}}", body.join(","))
}

fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn f(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.4}")
    } else {
        "null".into()
    }
}

fn cmd_group(args: &Args) -> Result<String, String> {
    let plan = Plan {
        devices: get(args, "devices", None)?,
        scenarios: get::<u8>(args, "scenarios", Some(1))? != 0,
        route: get::<u8>(args, "route", Some(0))? != 0,
        noise: get(args, "noise", Some(0))?,
        shadow: get::<u8>(args, "shadow", Some(0))? != 0,
    };
    let certs: String = get(args, "certs", None)?;
    let (text, n) = group_json(certs.as_ref(), &plan)?;
    eprintln!("group.json: {} devices, {n} subscriptions", plan.devices);
    Ok(text.trim_end().to_string())
}

fn cmd_stat(args: &Args) -> Result<String, String> {
    let pid: u32 = get(args, "pid", None)?;
    let c = cost(Some(pid));
    let fds = procstat::fd_count(pid).map_err(|e| e.to_string())?;
    Ok(json_line(&[
        ("scenario", q("stat")),
        ("rss_kib", c.rss.to_string()),
        ("hwm_kib", c.hwm.to_string()),
        ("cpu_s", f(c.cpu)),
        ("fds", fds.to_string()),
    ]))
}

fn cmd_idle(args: &Args, pid: Option<u32>) -> Result<String, String> {
    let t = target(args)?;
    let n: usize = get(args, "connections", None)?;
    let hold: f64 = get(args, "hold", Some(2.0))?;
    let first: usize = get(args, "first", Some(FIRST_IDLE))?;
    let before = cost(pid);
    let start = Instant::now();
    let mut held = Vec::with_capacity(n);
    let (mut failed, mut first_error) = (0usize, String::new());
    for i in 0..n {
        match connect(&t, first + i) {
            Ok(c) => held.push(c),
            Err(e) => {
                failed += 1;
                if first_error.is_empty() {
                    first_error = e;
                }
                if failed >= 20 && held.len() < failed {
                    break; // the broker refuses them all; no point trying the rest
                }
            }
        }
    }
    let connect_secs = start.elapsed().as_secs_f64();
    thread::sleep(Duration::from_secs_f64(hold));
    let after = cost(pid);
    let fds = pid.and_then(|p| procstat::fd_count(p).ok()).unwrap_or(0);
    let count = held.len();
    for c in held {
        c.disconnect();
    }
    Ok(json_line(&[
        ("scenario", q("idle")),
        ("requested", n.to_string()),
        ("connections", count.to_string()),
        ("failed", failed.to_string()),
        ("first_error", q(&first_error)),
        ("connect_secs", f(connect_secs)),
        ("rss_before_kib", before.rss.to_string()),
        ("rss_kib", after.rss.to_string()),
        ("hwm_kib", after.hwm.to_string()),
        ("fds", fds.to_string()),
        ("cpu_s", f(after.cpu - before.cpu)),
    ]))
}

fn cmd_fanin(args: &Args, pid: Option<u32>) -> Result<String, String> {
    let t = target(args)?;
    let k: usize = get(args, "publishers", Some(8))?;
    let m: u64 = get(args, "messages", Some(10_000))?;
    let qos = match get::<u8>(args, "qos", Some(0))? {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        other => return Err(format!("--qos {other}: 0 or 1")),
    };
    let window: u32 = get(args, "window", Some(32))?;
    let payload: usize = get(args, "payload", Some(64))?;
    let topic: String = get(args, "topic", Some(TOPIC_FANIN.to_string()))?;
    let noise: usize = get(args, "noise-subs", Some(0))?;
    if k == 0 || k > MAX_PUBLISHERS {
        return Err(format!("--publishers 1..={MAX_PUBLISHERS}"));
    }

    let mut sink = connect(&t, SINK)?;
    subscribe(&mut sink, std::slice::from_ref(&topic))?;
    // Extra subscriptions held by an idle client: mosquitto's equivalent of a big routing table.
    let mut noise_client = None;
    if noise > 0 {
        let mut c = connect(&t, NOISE_DEV)?;
        let filters: Vec<String> = (0..noise).map(noise_filter).collect();
        for chunk in filters.chunks(100) {
            subscribe(&mut c, chunk)?;
        }
        noise_client = Some(c);
    }
    let pubs: Vec<Client> = (0..k)
        .map(|i| connect(&t, FIRST_PUBLISHER + i))
        .collect::<Result<_, _>>()?;

    let epoch = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let go = Arc::new(Barrier::new(k + 2));
    let expected = m * k as u64;
    let sink_thread = {
        let (done, go, topic) = (done.clone(), go.clone(), topic.clone());
        thread::spawn(move || {
            go.wait();
            let deadline = Instant::now() + Duration::from_secs(120);
            receive(
                sink,
                &topic,
                expected,
                None,
                &done,
                Duration::from_secs(2),
                deadline,
            )
        })
    };
    let pub_threads: Vec<_> = pubs
        .into_iter()
        .map(|c| {
            let (go, topic) = (go.clone(), topic.clone());
            thread::spawn(move || {
                go.wait();
                publish(c, &topic, qos, m, 0.0, window, payload, epoch)
            })
        })
        .collect();
    let c0 = cost(pid);
    go.wait();
    let t0 = Instant::now();
    let (mut sent, mut acked) = (0, 0);
    let mut errors = Vec::new();
    for h in pub_threads {
        match h.join().map_err(|_| "publisher panicked".to_string())? {
            Ok((s, a)) => {
                sent += s;
                acked += a;
            }
            Err(e) => errors.push(e),
        }
    }
    let pub_secs = t0.elapsed().as_secs_f64();
    done.store(true, Ordering::Release);
    let r = sink_thread
        .join()
        .map_err(|_| "sink panicked".to_string())??;
    let c1 = cost(pid);
    if let Some(c) = noise_client {
        c.disconnect();
    }
    if let Some(e) = errors.first() {
        return Err(e.clone());
    }
    let secs = r.last.map(|l| (l - t0).as_secs_f64()).unwrap_or(f64::NAN);
    let cpu = c1.cpu - c0.cpu;
    Ok(json_line(&[
        ("scenario", q("fanin")),
        ("publishers", k.to_string()),
        ("qos", (qos as u8).to_string()),
        ("topic", q(&topic)),
        ("noise_subs", noise.to_string()),
        ("sent", sent.to_string()),
        ("acked", acked.to_string()),
        ("delivered", r.count.to_string()),
        ("publish_secs", f(pub_secs)),
        ("secs", f(secs)),
        ("msgs_per_s", f(r.count as f64 / secs)),
        ("cpu_s", f(cpu)),
        ("cpu_s_per_million", f(cpu / r.count as f64 * 1e6)),
        ("rss_kib", c1.rss.to_string()),
        ("hwm_kib", c1.hwm.to_string()),
    ]))
}

/// One publisher at a fixed rate to `subs` subscribers (latency: 1 subscriber, the sink).
fn paced(args: &Args, pid: Option<u32>, fanout: bool) -> Result<String, String> {
    let t = target(args)?;
    let rate: f64 = get(args, "rate", Some(if fanout { 200.0 } else { 1000.0 }))?;
    let secs: f64 = get(args, "secs", Some(5.0))?;
    let payload: usize = get(args, "payload", Some(64))?;
    let n_subs: usize = if fanout {
        get(args, "subscribers", Some(MAX_FANOUT_SUBS))?
    } else {
        1
    };
    if n_subs == 0 || n_subs > MAX_FANOUT_SUBS || rate <= 0.0 {
        return Err(format!("--subscribers 1..={MAX_FANOUT_SUBS}, --rate > 0"));
    }
    let (topic, first) = if fanout {
        (TOPIC_FANOUT, FIRST_FANOUT_SUB)
    } else {
        (TOPIC_LATENCY, SINK)
    };
    let mut subs = Vec::with_capacity(n_subs);
    for i in 0..n_subs {
        let mut c = connect(&t, first + i)?;
        subscribe(&mut c, &[topic.to_string()])?;
        subs.push(c);
    }
    let publisher = connect(&t, FIRST_PUBLISHER)?;
    let count = (rate * secs).round() as u64;
    let epoch = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let go = Arc::new(Barrier::new(n_subs + 2));
    let sub_threads: Vec<_> = subs
        .into_iter()
        .map(|c| {
            let (done, go) = (done.clone(), go.clone());
            thread::spawn(move || {
                go.wait();
                let deadline = Instant::now() + Duration::from_secs_f64(secs + 60.0);
                receive(
                    c,
                    topic,
                    count,
                    Some(epoch),
                    &done,
                    Duration::from_secs(2),
                    deadline,
                )
            })
        })
        .collect();
    let pub_thread = {
        let go = go.clone();
        thread::spawn(move || {
            go.wait();
            publish(
                publisher,
                topic,
                QoS::AtMostOnce,
                count,
                rate,
                1,
                payload,
                epoch,
            )
        })
    };
    let c0 = cost(pid);
    go.wait();
    let t0 = Instant::now();
    let pub_result = pub_thread
        .join()
        .map_err(|_| "publisher panicked".to_string())?;
    done.store(true, Ordering::Release);
    let (mut delivered, mut lat, mut last) = (0u64, Vec::new(), t0);
    for h in sub_threads {
        let r = h.join().map_err(|_| "subscriber panicked".to_string())??;
        delivered += r.count;
        lat.extend(r.latencies_us);
        if let Some(l) = r.last {
            last = last.max(l);
        }
    }
    let c1 = cost(pid);
    let (sent, _) = pub_result?;
    lat.sort_unstable();
    let cpu = c1.cpu - c0.cpu;
    let elapsed = (last - t0).as_secs_f64();
    Ok(json_line(&[
        ("scenario", q(if fanout { "fanout" } else { "latency" })),
        ("subscribers", n_subs.to_string()),
        ("rate", f(rate)),
        ("sent", sent.to_string()),
        ("expected", (sent * n_subs as u64).to_string()),
        ("delivered", delivered.to_string()),
        ("deliveries_per_s", f(delivered as f64 / elapsed)),
        ("p50_us", percentile(&lat, 0.50).to_string()),
        ("p99_us", percentile(&lat, 0.99).to_string()),
        ("max_us", lat.last().copied().unwrap_or(0).to_string()),
        ("cpu_s", f(cpu)),
        ("cpu_s_per_million", f(cpu / delivered as f64 * 1e6)),
        ("rss_kib", c1.rss.to_string()),
        ("hwm_kib", c1.hwm.to_string()),
    ]))
}

/// K devices, each updating its own shadow M times (QoS 0, as the device SDK sends shadow
/// requests) and waiting for `update/accepted` before the next: the local shadow service's
/// request throughput and the broker's CPU per accepted update.
fn cmd_shadow(args: &Args, pid: Option<u32>) -> Result<String, String> {
    let t = target(args)?;
    let k: usize = get(args, "publishers", Some(8))?;
    let m: u64 = get(args, "messages", Some(1000))?;
    if k == 0 || k > MAX_PUBLISHERS {
        return Err(format!("--publishers 1..={MAX_PUBLISHERS}"));
    }
    let mut pubs = Vec::new();
    for i in 0..k {
        let idx = FIRST_PUBLISHER + i;
        let mut c = connect(&t, idx)?;
        subscribe(&mut c, &[shadow_topic(idx, "update/accepted")])?;
        c.set_read_timeout(Duration::from_millis(100))
            .map_err(|e| e.to_string())?;
        pubs.push((idx, c));
    }
    let go = Arc::new(Barrier::new(k + 1));
    let threads: Vec<_> = pubs
        .into_iter()
        .map(|(idx, mut c)| {
            let go = go.clone();
            thread::spawn(move || -> Result<u64, String> {
                let (update, accepted) = (shadow_topic(idx, "update"), shadow_topic(idx, "update/accepted"));
                go.wait();
                let mut ok = 0;
                for n in 0..m {
                    let body = format!(
                        r#"{{"state":{{"reported":{{"seq":{n},"temperature":{},"mode":"bench"}}}},"clientToken":"{}-{n}"}}"#,
                        20 + n % 10,
                        c.name
                    );
                    c.publish(&update, QoS::AtMostOnce, 0, body.as_bytes())
                        .map_err(|e| format!("{}: {e}", c.name))?;
                    let deadline = Instant::now() + Duration::from_secs(10);
                    loop {
                        match c.read_packet().map_err(|e| format!("{}: {e}", c.name))? {
                            Some(Packet::Publish(p)) if p.topic == accepted => break,
                            _ if Instant::now() > deadline => {
                                return Err(format!("{}: no update/accepted for request {n}", c.name))
                            }
                            _ => {}
                        }
                    }
                    ok += 1;
                }
                c.disconnect();
                Ok(ok)
            })
        })
        .collect();
    let c0 = cost(pid);
    go.wait();
    let t0 = Instant::now();
    let mut accepted = 0;
    for h in threads {
        accepted += h.join().map_err(|_| "publisher panicked".to_string())??;
    }
    let secs = t0.elapsed().as_secs_f64();
    let c1 = cost(pid);
    let cpu = c1.cpu - c0.cpu;
    Ok(json_line(&[
        ("scenario", q("shadow")),
        ("publishers", k.to_string()),
        ("accepted", accepted.to_string()),
        ("secs", f(secs)),
        ("updates_per_s", f(accepted as f64 / secs)),
        ("cpu_s", f(cpu)),
        ("updates_per_cpu_s", f(accepted as f64 / cpu)),
        ("rss_kib", c1.rss.to_string()),
    ]))
}

fn cmd_coldstart(args: &Args, cmd: &[String]) -> Result<String, String> {
    let t = target(args)?;
    let timeout: f64 = get(args, "timeout", Some(30.0))?;
    let settle: f64 = get(args, "settle", Some(1.0))?;
    let (prog, rest) = cmd
        .split_first()
        .ok_or("coldstart needs `-- CMD ARGS...`")?;
    let cfg = client::tls_config(&t.certs, SINK).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut child = Command::new(prog)
        .args(rest)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{prog}: {e}"))?;
    let pid = child.id();
    let mut last_err = String::new();
    let mut first_connack = None;
    while start.elapsed().as_secs_f64() < timeout {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "{prog} exited with {status} before accepting a device"
            ));
        }
        match Client::connect_with(&t, SINK, cfg.clone(), Duration::from_secs(2)) {
            Ok(c) => {
                first_connack = Some(start.elapsed());
                c.disconnect();
                break;
            }
            Err(e) => {
                last_err = e.to_string();
                thread::sleep(Duration::from_millis(2));
            }
        }
    }
    // Idle RSS: the broker after it has served one device and settled.
    thread::sleep(Duration::from_secs_f64(settle));
    let c = cost(Some(pid));
    // SAFETY: signalling our own child by pid.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let stop = Instant::now();
    while child.try_wait().ok().flatten().is_none() {
        if stop.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
        }
        thread::sleep(Duration::from_millis(20));
    }
    let d = first_connack.ok_or_else(|| format!("no CONNACK within {timeout}s: {last_err}"))?;
    Ok(json_line(&[
        ("scenario", q("coldstart")),
        ("ms", f(d.as_secs_f64() * 1000.0)),
        ("rss_kib", c.rss.to_string()),
        ("hwm_kib", c.hwm.to_string()),
        ("cpu_s", f(c.cpu)),
    ]))
}

fn run(argv: &[String]) -> Result<String, String> {
    let (cmd, rest) = argv.split_first().ok_or(USAGE)?;
    let (args, trailing) = parse_args(rest)?;
    let pid: Option<u32> = args
        .get("pid")
        .map(|p| p.parse())
        .transpose()
        .map_err(|_| "--pid: a number")?;
    raise_nofile();
    match cmd.as_str() {
        "group" => cmd_group(&args),
        "stat" => cmd_stat(&args),
        "idle" => cmd_idle(&args, pid),
        "fanin" => cmd_fanin(&args, pid),
        "latency" => paced(&args, pid, false),
        "fanout" => paced(&args, pid, true),
        "coldstart" => cmd_coldstart(&args, &trailing),
        "shadow" => cmd_shadow(&args, pid),
        "-h" | "--help" | "help" => Ok(USAGE.trim_end().to_string()),
        other => Err(format!("unknown command {other:?}\n{USAGE}")),
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    match run(&argv) {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sprig-loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}
