//! The group-parse transient (issue 13 §7), in heap bytes, measured with a counting global
//! allocator: the largest group sprig accepts (200 devices, 10,000 subscriptions, ≈2.2 MB of
//! JSON) is parsed by `json::parse` and by `Group::parse`, and the peak of live heap bytes is
//! compared with the file size. Fails if the transient grows back.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::time::Duration;

use common::*;
use std::sync::atomic::{AtomicIsize, Ordering};

use sprig::config::Group;
use sprig::limits;

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

fn grew(n: isize) {
    let now = LIVE.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        grew(l.size() as isize);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        // A realloc may copy: old and new blocks are both live for a moment.
        grew(new as isize);
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The tests of this file run one at a time: the allocator counts every thread.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Live heap bytes now; resets the peak to now.
fn reset_peak() -> isize {
    let now = LIVE.load(Ordering::Relaxed);
    PEAK.store(now, Ordering::Relaxed);
    now
}

fn peak() -> isize {
    PEAK.load(Ordering::Relaxed)
}

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// Heap the largest group's routing table may keep, and peak at while it is built (bytes; about
/// 2x and 1.5x what is measured, ARCHITECTURE.md "The routing table").
const ROUTER_KEPT_MAX: isize = 1_500_000;
const ROUTER_PEAK_MAX: isize = 3_000_000;

const CERT: &str = "arn:aws:iot:us-east-1:123456789012:cert/ABCDEF0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789";

fn thing(n: &str) -> String {
    format!("arn:aws:iot:us-east-1:123456789012:thing/{n}")
}

/// The largest group: `limits::MAX_GROUP_DEVICES` devices, `MAX_GROUP_SUBSCRIPTIONS`
/// subscriptions between them (the shape of `config::group`'s `largest_group_fits_the_limits`).
fn largest_group() -> Vec<u8> {
    let mut doc = String::from(r#"{"DeviceDefinitionVersion":{"Devices":["#);
    for i in 0..limits::MAX_GROUP_DEVICES {
        if i > 0 {
            doc.push(',');
        }
        let n = format!("device-{i:04}");
        doc.push_str(&format!(
            r#"{{"Id":"{n}","ThingArn":"{}","CertificateArn":"{CERT}","SyncShadow":false}}"#,
            thing(&n)
        ));
    }
    doc.push_str(r#"]},"SubscriptionDefinitionVersion":{"Subscriptions":["#);
    for i in 0..limits::MAX_GROUP_SUBSCRIPTIONS {
        if i > 0 {
            doc.push(',');
        }
        let (a, b) = (
            i % limits::MAX_GROUP_DEVICES,
            (i + 1) % limits::MAX_GROUP_DEVICES,
        );
        doc.push_str(&format!(
            r#"{{"Id":"subscription-{i:05}","Source":"{}","Subject":"building/floor-{}/sensors/+/temperature","Target":"{}"}}"#,
            thing(&format!("device-{a:04}")),
            i % 97,
            thing(&format!("device-{b:04}"))
        ));
    }
    doc.push_str("]}}");
    doc.into_bytes()
}

#[test]
fn parsing_the_largest_group_peaks_under_three_times_its_size() {
    let _one_at_a_time = serial();
    let bytes = largest_group();
    let file = bytes.len() as isize;

    let before = reset_peak();
    let tree = sprig::json::parse(&bytes, limits::MAX_GROUP_JSON_BYTES, limits::MAX_JSON_DEPTH)
        .expect("json");
    let tree_peak = peak() - before;
    let tree_kept = live() - before;
    drop(tree);

    let before = reset_peak();
    let doc = sprig::json::Doc::parse(&bytes, limits::MAX_GROUP_JSON_BYTES, limits::MAX_JSON_DEPTH)
        .expect("json");
    let doc_kept = live() - before;
    assert_eq!(doc_kept as usize, doc.heap_bytes());
    drop(doc);

    let before = reset_peak();
    let (group, warnings) = Group::parse(&bytes, Path::new("group.json")).expect("group");
    let group_peak = peak() - before;
    let group_kept = live() - before;
    assert!(warnings.is_empty());
    assert_eq!(group.subscriptions.len(), limits::MAX_GROUP_SUBSCRIPTIONS);

    let before = reset_peak();
    let router = sprig::router::Router::new(&group.subscriptions);
    let router_peak = peak() - before;
    let router_kept = live() - before;
    let before = reset_peak();
    let copy = group.clone();
    let clone_kept = live() - before;
    drop((router, copy));
    eprintln!("router tables: peak {router_peak} B, kept {router_kept} B; a clone of the Group {clone_kept} B");

    // A hot deployment's hub step: the old table goes before the new one is built.
    let hub = sprig::broker::Hub::new(&group, sprig::workq::SharedQueue::new(8, 1 << 20), 10);
    let before = reset_peak();
    hub.apply_group(&group);
    let apply_peak = peak() - before;
    eprintln!("Hub::apply_group of the same group: peak {apply_peak} B above the hub in force");
    drop((hub, group));

    eprintln!(
        "largest group: file {file} B; json::Doc tree {doc_kept} B; json::parse (Value) peak {tree_peak} B, \
         Value kept {tree_kept} B; Group::parse peak {group_peak} B (with the file: {} B = {:.2}x the file), \
         Group kept {group_kept} B",
        group_peak + file,
        (group_peak + file) as f64 / file as f64
    );
    // The goal (issue 13 §7): file + everything Group::parse holds at its peak ≤ 3x the file.
    // Measured 2.41x (the file 1x, the Group 0.93x, the tree 0.35x, the rest small); 5.46x
    // before the compact tree.
    assert!(
        group_peak + file <= 3 * file,
        "Group::parse peaks at {group_peak} B + the file {file} B: more than 3x the file"
    );
    // The tree: 8-byte nodes, strings borrowed from the source (0.35x the file measured; the
    // json::Value tree was 2.25x).
    assert!(
        doc_kept <= file / 2,
        "the json::Doc tree of the largest group is {doc_kept} B, more than half the file ({file} B)"
    );
    // Hub::apply_group frees the old routing table before building the new one: its peak is the
    // build's own peak less the table it freed (1.25 MB measured), never the old table plus a
    // whole build.
    assert!(
        apply_peak + router_kept / 2 <= router_peak,
        "Hub::apply_group peaked at {apply_peak} B over the hub in force, a build alone peaks at {router_peak} B: \
         the old routing table ({router_kept} B) alive while the new one is built?"
    );
    // The frozen routing table (ARCHITECTURE.md, "The routing table"): 0.76 MB kept and a
    // 1.98 MB build peak measured for the largest group; 9.48 MB and 11.77 MB with a hash-map
    // node per level before.
    assert!(
        router_kept <= ROUTER_KEPT_MAX,
        "the routing table of the largest group holds {router_kept} B, over {ROUTER_KEPT_MAX} B"
    );
    assert!(
        router_peak <= ROUTER_PEAK_MAX,
        "building the routing table of the largest group peaked at {router_peak} B, over {ROUTER_PEAK_MAX} B"
    );
}

fn status_kb(pid: i32, key: &str) -> u64 {
    proc_status_field(pid, key)
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{key} of {pid}"))
}

/// VmRSS once it stopped changing (two readings 300 ms apart within 8 kB).
fn settled_rss_kb(pid: i32) -> u64 {
    let mut last = status_kb(pid, "VmRSS");
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(300));
        let now = status_kb(pid, "VmRSS");
        if now.abs_diff(last) <= 8 {
            return now;
        }
        last = now;
    }
    last
}

/// The daemon started with the largest group, then the same group hot-deployed with another
/// version id: VmHWM at most 3x the file above the steady state (the goal). At start the steady
/// state is the settled VmRSS; on the hot apply it is the settled VmRSS before it, with a group
/// of the same size in force (musl, which gives freed memory back, settles 0.1 MB above it
/// afterwards; glibc keeps what it freed, so its VmRSS after the apply holds part of the peak).
/// Measured (hot apply): 2.6x the file with the musl x86_64 router build and with the debug
/// build; before issue 13 §7, 6.5x (musl) and 7.8x (glibc release build). Another binary:
/// `SPRIG_TEST_BIN`.
#[test]
fn the_daemon_loads_the_largest_group_with_a_small_peak() {
    let _one_at_a_time = serial();
    let root = TestRoot::new("transient");
    let text = String::from_utf8(largest_group()).unwrap();
    let file_kb = text.len() as u64 / 1024;
    root.write_group(&text);
    let daemon = root.start_ready();
    let pid = daemon.pid;
    let rss = settled_rss_kb(pid);
    let hwm = status_kb(pid, "VmHWM");
    eprintln!(
        "start: file {file_kb} kB; VmHWM {hwm} kB, settled VmRSS {rss} kB: peak - steady = {} kB = {:.2}x the file",
        hwm - rss,
        (hwm - rss) as f64 / file_kb as f64
    );
    assert!(
        hwm - rss <= 3 * file_kb,
        "start: VmHWM {hwm} kB is more than 3x the file above the settled VmRSS {rss} kB"
    );
    // Reset VmHWM to the current RSS (proc(5), clear_refs "5"), then a hot deployment.
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("clear_refs");
    let before = status_kb(pid, "VmHWM");
    let next = text.replacen('{', r#"{"GroupVersionId":"2","#, 1);
    let p = root.dir.path().join("next.json");
    std::fs::write(&p, &next).unwrap();
    let (st, out, err) = root.sprig("deploy", &[p.to_str().unwrap()]);
    assert!(st.success(), "deploy: {out}{err}");
    assert!(
        wait_until(PATIENCE, || status_counter(&root, "applied_since_start")
            >= 1),
        "the deployment was not applied:\n{}",
        daemon.output()
    );
    let rss2 = settled_rss_kb(pid);
    let hwm2 = status_kb(pid, "VmHWM");
    let over = hwm2.saturating_sub(rss);
    eprintln!(
        "hot apply: VmHWM {hwm2} kB (reset to {before} kB), settled VmRSS {rss} kB before, {rss2} kB after: \
         peak - steady = {over} kB = {:.2}x the file",
        over as f64 / file_kb as f64
    );
    assert!(
        over <= 3 * file_kb,
        "hot apply: VmHWM {hwm2} kB is more than 3x the file above the steady VmRSS {rss} kB"
    );
}
