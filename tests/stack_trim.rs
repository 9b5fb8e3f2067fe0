//! `sys::trim_stack` and `sys::release_text` (idle RSS, issue 13): the main thread's stack pages
//! below the caller go back to the kernel, the caller's own frames keep their data, and deep
//! calls work again afterwards; the executable's code pages are unmapped and the code runs on.
//! Runs on the main thread (`harness = false`): `trim_stack` only acts on the process's
//! `[stack]` mapping, which the test harness's threads are not on.

use std::hint::black_box;

use sprig::sys::{release_text, trim_stack};

/// Resident kB of the first mapping of process `pid` ("self" for this one) whose smaps header
/// line satisfies `pick`.
fn rss_kb(pid: &str, pick: impl Fn(&str) -> bool) -> u64 {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap();
    let mut inside = false;
    for line in smaps.lines() {
        if line.contains('-') && !line.ends_with("kB") {
            inside = pick(line);
        } else if inside && line.starts_with("Rss:") {
            return line.split_whitespace().nth(1).unwrap().parse().unwrap();
        }
    }
    panic!("no such mapping in /proc/self/smaps");
}

fn stack_rss_kb() -> u64 {
    rss_kb("self", |l| l.ends_with("[stack]"))
}

/// Touches `depth` frames of 4 KiB each below the caller and returns a checksum.
#[inline(never)]
fn deep(depth: usize) -> u64 {
    let frame = black_box([depth as u8; 4096]);
    let below = if depth == 0 { 0 } else { deep(depth - 1) };
    below + u64::from(frame[0]) + u64::from(frame[4095])
}

fn expected(depth: usize) -> u64 {
    (0..=depth as u64).map(|d| 2 * (d % 256)).sum()
}

/// The parent runs the checks in a copy of this executable on tmpfs (there the page cache holds
/// the code in 4 KiB pages, as an installed binary on a router has it; a freshly linked file on
/// a disk with large page-cache folios maps back in folio-sized pieces whatever release_text
/// did), and measures the copy's resident code from outside while it is stopped: measuring
/// from inside would run, and so map back, the code that reads /proc.
fn main() {
    const CHILD: &str = "SPRIG_STACK_TRIM_CHILD";
    if std::env::var_os(CHILD).is_some() {
        return checks();
    }
    let base = ["/dev/shm"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("sprig-stack-trim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("stack_trim");
    std::fs::copy(std::env::current_exe().unwrap(), &copy).unwrap();
    let mut child = std::process::Command::new(&copy)
        .env(CHILD, "1")
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let code = |label: &str| {
        // Wait until the child has stopped itself, read its code's resident size, resume it.
        let stopped = (0..1000).any(|_| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .next();
            state == Some("T") || {
                std::thread::sleep(std::time::Duration::from_millis(10));
                false
            }
        });
        assert!(stopped, "the child did not stop {label}");
        let path = copy.to_string_lossy().into_owned();
        let kb = rss_kb(&pid, |l| {
            l.split_whitespace().nth(1) == Some("r-xp") && l.ends_with(path.as_str())
        });
        sprig::sys::kill(child.id() as i32, libc::SIGCONT).unwrap();
        kb
    };
    let before = code("before release_text");
    let after = code("after release_text");
    let status = child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "the checks failed (output above)");
    println!("code: {before} kB resident, {after} kB right after release_text");
    // What comes back right away is the code on the way from the call to the stop, 64 KiB
    // around each first touch (a debug build's code is scattered: measured 288 of 408 kB).
    assert!(
        after + 64 <= before,
        "release_text left {after} kB of {before} kB resident"
    );
}

fn stop_self() {
    sprig::sys::kill(std::process::id() as i32, libc::SIGSTOP).unwrap();
}

fn checks() {
    const DEPTH: usize = 96; // 384 KiB below this frame, like a debug build's start-up
    let live = black_box([0x5au8; 8192]);
    assert_eq!(deep(DEPTH), expected(DEPTH));
    let before = stack_rss_kb();
    assert!(
        before >= 384,
        "the deep calls left only {before} kB resident"
    );

    let freed = trim_stack(16 * 1024).expect("trim_stack");
    let after = stack_rss_kb();
    println!("stack: {before} kB resident after deep calls, {after} kB after trim_stack ({freed} bytes given back)");
    assert!(freed >= 360 * 1024, "trim_stack gave back {freed} bytes");
    assert!(
        after + 360 <= before,
        "stack still {after} kB resident after trim_stack (was {before} kB)"
    );
    // The caller's frame is intact and deep calls work again (zero pages, faulted anew).
    assert!(
        live.iter().all(|&b| b == 0x5a),
        "the caller's frame changed"
    );
    assert_eq!(deep(DEPTH), expected(DEPTH));
    assert!(
        stack_rss_kb() >= before - 16,
        "deep calls after the trim are not resident again"
    );

    // The code: what ran so far is resident (the parent measures it); after release_text
    // only what runs next comes back, and it runs as before.
    stop_self();
    let mapped = release_text().expect("release_text");
    stop_self();
    assert!(mapped > 0, "release_text found no code mapping");
    assert_eq!(deep(DEPTH), expected(DEPTH));

    // Off the main thread's stack the call gives nothing back.
    let freed = std::thread::spawn(|| trim_stack(16 * 1024).unwrap())
        .join()
        .unwrap();
    assert_eq!(freed, 0);
    println!("stack_trim: ok");
}
