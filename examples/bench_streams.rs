//! Stream store next to the cloud spool, in-process: appends per second and payload bytes per
//! CPU-second for the same messages (256-byte payloads). Run by scripts/bench-streams.sh:
//!
//!     cargo run --release --example bench_streams -- DIR
//!
//! Prints one markdown table row per store. CPU is this process's utime + stime.

use std::path::Path;
use std::time::Instant;

use bytes::Bytes;
use sprig::spool::Spool;
use sprig::streams::store::Store;
use sprig::streams::wire::{
    decode_definition, encode_definition, Definition, Persistence, Strategy,
};

const PAYLOAD: usize = 256;
const BUDGET: u64 = 256 << 20;

fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

fn row(name: &str, n: usize, f: impl FnOnce()) {
    let (t0, c0) = (Instant::now(), cpu_secs());
    f();
    let (wall, cpu) = (t0.elapsed().as_secs_f64(), cpu_secs() - c0);
    let mb = (n * PAYLOAD) as f64 / 1e6;
    println!(
        "| {name} | {n} | {:.0} | {} |",
        n as f64 / wall,
        if cpu > 0.0 {
            format!("{:.0}", mb / cpu)
        } else {
            "< 1 tick".into()
        }
    );
}

fn def(name: &str, persistence: Persistence, flush: bool) -> Definition {
    let mut e = minicbor::Encoder::new(Vec::new());
    let d = Definition {
        name: name.into(),
        max_size: BUDGET,
        segment_size: 1 << 20,
        ttl_ms: None,
        strategy: Strategy::RejectNewData,
        persistence,
        flush_on_write: flush,
        export_raw: None,
        http: Vec::new(),
        unsupported: Vec::new(),
    };
    encode_definition(&mut e, &d);
    decode_definition(&e.into_writer()).unwrap()
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/bench-streams".into());
    let dir = Path::new(&dir);
    let _ = std::fs::remove_dir_all(dir);
    let payload = Bytes::from(vec![7u8; PAYLOAD]);
    let n = 100_000;
    println!("| Store (256-byte messages) | messages | appends/s | payload MB per CPU-second |");
    println!("|---|---:|---:|---:|");
    row("cloud spool, Memory", n, || {
        let mut s = Spool::memory(BUDGET);
        for _ in 0..n {
            s.push("t/x", payload.clone(), 1).unwrap();
        }
    });
    row("cloud spool, FileSystem", n, || {
        let mut s = Spool::open(&dir.join("spool"), BUDGET).unwrap();
        for _ in 0..n {
            s.push("t/x", payload.clone(), 1).unwrap();
        }
        s.flush();
    });
    let mut store = Store::open(&dir.join("streams"), BUDGET * 4);
    for (name, p, flush, n) in [
        ("stream, Memory", Persistence::Memory, false, n),
        ("stream, File", Persistence::File, false, n),
        (
            "stream, File + flushOnWrite",
            Persistence::File,
            true,
            2_000,
        ),
    ] {
        store
            .create(def(name.replace([',', '+'], "").as_str(), p, flush))
            .unwrap();
        let sname = name.replace([',', '+'], "");
        row(name, n, || {
            for i in 0..n {
                store.append(&sname, &payload, i as u64).unwrap();
            }
        });
    }
    let _ = std::fs::remove_dir_all(dir);
}
