//! `sys::trim_stack` (idle RSS, issue 13): the main thread's stack pages below the caller go
//! back to the kernel, the caller's own frames keep their data, and deep calls work again
//! afterwards. Runs on the main thread (`harness = false`): the function only acts on the
//! process's `[stack]` mapping, which the test harness's threads are not on.

use std::hint::black_box;

use sprig::sys::trim_stack;

/// Resident kB of the `[stack]` mapping (/proc/self/smaps).
fn stack_rss_kb() -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut in_stack = false;
    for line in smaps.lines() {
        if line.contains('-') && !line.ends_with("kB") {
            in_stack = line.ends_with("[stack]");
        } else if in_stack && line.starts_with("Rss:") {
            return line.split_whitespace().nth(1).unwrap().parse().unwrap();
        }
    }
    panic!("no [stack] mapping in /proc/self/smaps");
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

fn main() {
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

    // Off the main thread's stack the call gives nothing back.
    let freed = std::thread::spawn(|| trim_stack(16 * 1024).unwrap())
        .join()
        .unwrap();
    assert_eq!(freed, 0);
    println!("stack_trim: ok");
}
