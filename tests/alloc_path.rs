//! What one routed message costs the broker on the device → work queue → dispatcher → outbox →
//! device path (issue 13 §3): heap allocations, bytes allocated, wake-ups of the event loop and
//! polls of the dispatcher, counted per message with a counting allocator. The broker (hub,
//! listener, dispatcher, rustls) runs in this process on its executor; the devices are
//! `mosquitto_pub -l` (one PUBLISH per line we write) and `mosquitto_sub`, outside, so every
//! allocation counted is the broker's. Messages go one at a time (the next line is written
//! once the subscriber printed the last), as at 1,000 msg/s: no batching hides a per-message
//! cost.
//!
//! Fails if allocations per message grow back past [`MAX_ALLOCS_PER_MESSAGE`]. Prints the
//! figures ARCHITECTURE.md quotes ("The path of a message, per message").

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_executor::LocalExecutor;
use async_io::{Async, Timer};
use common::*;
use futures_lite::AsyncReadExt;
use sprig::broker::{self, Hub, ServerConfigSlot};
use sprig::workq::SharedQueue;

/// Heap allocations (calls to `alloc`/`realloc` that moved) and bytes asked for, whole process.
struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static ALLOC_BYTES: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        ALLOC_BYTES.fetch_add(l.size(), Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        ALLOC_BYTES.fetch_add(new.saturating_sub(l.size()), Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations per routed 64-byte QoS 0 message allowed (measured: see ARCHITECTURE.md, "The
/// path of a message, per message"; 12.1 before issue 13 §3). The slack is for rustls versions.
const MAX_ALLOCS_PER_MESSAGE: f64 = 6.0;

/// Messages measured (after a warm-up of the same size).
const N: usize = 400;

/// Counts the polls of a future (the event loop's wake-ups, the dispatcher's polls).
struct Polls<F> {
    fut: Pin<Box<F>>,
    count: Rc<Cell<usize>>,
}

impl<F: Future> Future for Polls<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.count.set(self.count.get() + 1);
        self.fut.as_mut().poll(cx)
    }
}

#[derive(Clone, Copy)]
struct Mark {
    allocs: usize,
    bytes: usize,
    loop_polls: usize,
    dispatcher_polls: usize,
}

#[test]
fn a_routed_message_costs_few_allocations() {
    let dir = TempDir::new("alloc-path");
    let d = dir.path();
    let (skey, scert) = localhost_server_identity(d);
    let publisher = make_device(d, "pub");
    let sink = make_device(d, "sink");
    let subs = vec![(publisher.thing_arn(), "lat/t".to_string(), sink.thing_arn())];
    let text = group_json_with(&[&publisher, &sink], &subs);
    let (group, tls, port, listener) = in_process_broker_parts(&text, &scert, &skey);

    let ex: &'static LocalExecutor<'static> = Box::leak(Box::new(LocalExecutor::new()));
    let hub = Hub::new(&group, SharedQueue::new(64, 1 << 20), 100);
    let slot: ServerConfigSlot = Rc::new(RefCell::new(tls));
    let dispatcher_polls = Rc::new(Cell::new(0));
    ex.spawn(Polls {
        fut: Box::pin(broker::run_dispatcher(hub.clone())),
        count: dispatcher_polls.clone(),
    })
    .detach();
    ex.spawn(broker::run_listener(hub.clone(), ex, listener, slot))
        .detach();

    let mut sub = Command::new("stdbuf")
        .args(["-oL", "mosquitto_sub"])
        .args(mosquitto_device_args(
            port, &scert, &sink.cert, &sink.key, &sink.name,
        ))
        .args(["-k", "600", "-t", "lat/t"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut publ = Command::new("mosquitto_pub")
        .args(mosquitto_device_args(
            port,
            &scert,
            &publisher.cert,
            &publisher.key,
            &publisher.name,
        ))
        .args(["-k", "600", "-t", "lat/t", "-l"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = Async::new(sub.stdout.take().unwrap()).unwrap();
    let mut input = publ.stdin.take().unwrap();
    // 63 bytes and a newline: a 64-byte line, 63-byte payload (mosquitto_pub strips the \n).
    let line = [b'x'; 63].iter().chain(b"\n").copied().collect::<Vec<u8>>();

    let loop_polls = Rc::new(Cell::new(0));
    let hub2 = hub.clone();
    let main = async {
        // Both devices connected and the subscription in place: send until the first arrives.
        let end = Instant::now() + PATIENCE;
        while hub2.connected_devices().len() < 2 {
            assert!(Instant::now() < end, "devices did not connect");
            Timer::after(Duration::from_millis(20)).await;
        }
        let mut buf = [0u8; 4096];
        let mut pending = 0usize;
        // Warm-up (the subscription may land after the first messages: those are not
        // delivered, so wait for the first delivery before counting lines).
        let mut first = false;
        while !first {
            input.write_all(&line).unwrap();
            input.flush().unwrap();
            first = futures_lite::future::or(
                async {
                    let n = out.read(&mut buf).await.unwrap();
                    pending += n;
                    true
                },
                async {
                    Timer::after(Duration::from_millis(200)).await;
                    false
                },
            )
            .await;
        }
        // Let stragglers of the warm-up arrive, then forget them.
        Timer::after(Duration::from_millis(300)).await;
        while let Some(n) =
            futures_lite::future::or(async { Some(out.read(&mut buf).await.unwrap()) }, async {
                Timer::after(Duration::from_millis(100)).await;
                None
            })
            .await
        {
            assert!(n > 0);
        }
        pending = 0;
        // One line at a time; returns once the subscriber printed it. One timer for the
        // whole run (a timer per message would be counted as the broker's allocations).
        let mut watchdog = Timer::after(PATIENCE * 2);
        let mut one = async |pending: &mut usize| {
            input.write_all(&line).unwrap();
            input.flush().unwrap();
            while *pending < line.len() {
                let n =
                    futures_lite::future::or(async { out.read(&mut buf).await.unwrap() }, async {
                        (&mut watchdog).await;
                        panic!(
                            "the measured messages did not arrive within {:?}",
                            PATIENCE * 2
                        )
                    })
                    .await;
                assert!(n > 0, "mosquitto_sub exited");
                *pending += n;
            }
            *pending -= line.len();
        };
        for _ in 0..N {
            one(&mut pending).await;
        }
        let mark = |lp: &Rc<Cell<usize>>| Mark {
            allocs: ALLOCS.load(Ordering::Relaxed),
            bytes: ALLOC_BYTES.load(Ordering::Relaxed),
            loop_polls: lp.get(),
            dispatcher_polls: dispatcher_polls.get(),
        };
        let before = mark(&loop_polls);
        for _ in 0..N {
            one(&mut pending).await;
        }
        let after = mark(&loop_polls);
        (before, after)
    };
    let (before, after) = async_io::block_on(Polls {
        fut: Box::pin(ex.run(main)),
        count: loop_polls.clone(),
    });
    drop(input);
    let _ = publ.kill();
    let _ = sub.kill();
    let _ = publ.wait();
    let _ = sub.wait();

    let per = |a: usize, b: usize| (b - a) as f64 / N as f64;
    let allocs = per(before.allocs, after.allocs);
    eprintln!(
        "per routed message (64-byte line, QoS 0, one at a time, {N} messages): \
         {allocs:.2} allocations, {:.0} bytes allocated, {:.2} event-loop polls, \
         {:.2} dispatcher polls",
        per(before.bytes, after.bytes),
        per(before.loop_polls, after.loop_polls),
        per(before.dispatcher_polls, after.dispatcher_polls),
    );
    assert!(hub.stats.delivered.get() as usize >= 2 * N);
    assert!(
        allocs <= MAX_ALLOCS_PER_MESSAGE,
        "{allocs:.2} allocations per routed message, over {MAX_ALLOCS_PER_MESSAGE}"
    );
}
