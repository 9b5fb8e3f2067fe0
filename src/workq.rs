//! The one bounded work queue shared by every producer (devices through the broker, the cloud
//! link), drained by the dispatcher. Capacity is `runtime.maxWorkItemCount` items and
//! [`limits::MAX_WORK_QUEUE_BYTES`] bytes: when either bound is hit the NEW item is dropped and
//! counted; a push never blocks and never grows memory (guide: "maxWorkItemCount ... the
//! maximum number of work items that the Greengrass core can process" — excess is dropped).
//!
//! [`WorkQueue`] is the sans-IO core; [`SharedQueue`] adds the wake-up for the one consumer.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

use bytes::Bytes;

use crate::config::Endpoint;
use crate::limits;

/// One message waiting to be routed: who sent it, on which topic, with which payload.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkItem {
    pub source: Endpoint,
    pub topic: String,
    pub payload: Bytes,
}

impl WorkItem {
    /// Bytes this item holds (topic and payload), as counted against the byte budget.
    pub fn size(&self) -> usize {
        self.topic.len() + self.payload.len()
    }
}

/// Why a push was refused. The item is dropped; the counters say how often.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The queue holds `capacity` items or its byte budget is used up.
    Full,
    /// The payload is over [`limits::MAX_PAYLOAD_BYTES`].
    Oversize,
}

/// Counters kept by the queue, reported by `sprig status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub accepted: u64,
    pub dropped_full: u64,
    pub dropped_oversize: u64,
    /// Most items ever queued at once.
    pub high_water: usize,
}

/// A fixed-capacity FIFO of [`WorkItem`]s.
#[derive(Debug)]
pub struct WorkQueue {
    items: VecDeque<WorkItem>,
    capacity: usize,
    max_bytes: usize,
    bytes: usize,
    stats: QueueStats,
    /// Drops since the queue last had room, for one log line per episode instead of per item.
    dropping: u64,
}

impl WorkQueue {
    /// A queue of at most `capacity` items (at least 1) and `max_bytes` bytes, allocated now.
    pub fn new(capacity: usize, max_bytes: usize) -> WorkQueue {
        let capacity = capacity.max(1);
        WorkQueue {
            items: VecDeque::with_capacity(capacity),
            capacity,
            max_bytes,
            bytes: 0,
            stats: QueueStats::default(),
            dropping: 0,
        }
    }

    /// Queues `item`, or drops it and counts why. Never blocks, never grows past the bounds.
    pub fn push(&mut self, item: WorkItem) -> Result<(), Refused> {
        if item.payload.len() > limits::MAX_PAYLOAD_BYTES {
            self.stats.dropped_oversize += 1;
            log::warn!(
                "dropped a {}-byte message from {:?} on {:?}: payloads over {} bytes are refused",
                item.payload.len(),
                item.source,
                item.topic,
                limits::MAX_PAYLOAD_BYTES
            );
            return Err(Refused::Oversize);
        }
        let size = item.size();
        if self.items.len() >= self.capacity || self.bytes + size > self.max_bytes {
            self.stats.dropped_full += 1;
            if self.dropping == 0 {
                log::warn!(
                    "work queue full ({} items, {} bytes; limits {} items, {} bytes): dropping new messages",
                    self.items.len(),
                    self.bytes,
                    self.capacity,
                    self.max_bytes
                );
            }
            self.dropping += 1;
            return Err(Refused::Full);
        }
        if self.dropping > 0 {
            log::warn!(
                "work queue has room again; {} messages were dropped",
                self.dropping
            );
            self.dropping = 0;
        }
        self.bytes += size;
        self.items.push_back(item);
        self.stats.accepted += 1;
        self.stats.high_water = self.stats.high_water.max(self.items.len());
        Ok(())
    }

    /// The oldest item, if any.
    pub fn pop(&mut self) -> Option<WorkItem> {
        let item = self.items.pop_front()?;
        self.bytes -= item.size();
        Some(item)
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes currently held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn stats(&self) -> QueueStats {
        self.stats
    }
}

/// A wake-up flag for ONE waiting task on the one thread: `notify` sets it and wakes the
/// waiter; `notified` completes once per set. Cheaper than a channel, cannot overflow.
#[derive(Debug, Default)]
pub struct Notify {
    pending: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Notify {
    pub fn notify(&self) {
        self.pending.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// Completes when `notify` was called since the last completion.
    pub async fn notified(&self) {
        poll_fn(|cx| {
            if self.pending.replace(false) {
                Poll::Ready(())
            } else {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

/// The work queue as the executor's tasks share it: any number of producers, one consumer.
/// This is the seam for every message source (the broker, the cloud link, later Lambdas):
/// `push` a [`WorkItem`] with its source [`Endpoint`].
#[derive(Debug)]
pub struct SharedQueue {
    queue: RefCell<WorkQueue>,
    ready: Notify,
}

/// A handle to the shared queue; clone it for each producer.
pub type QueueHandle = Rc<SharedQueue>;

impl SharedQueue {
    pub fn new(capacity: usize, max_bytes: usize) -> QueueHandle {
        Rc::new(SharedQueue {
            queue: RefCell::new(WorkQueue::new(capacity, max_bytes)),
            ready: Notify::default(),
        })
    }

    /// Queues `item` for the dispatcher, or drops and counts it. Never blocks.
    pub fn push(&self, item: WorkItem) -> Result<(), Refused> {
        self.queue.borrow_mut().push(item)?;
        self.ready.notify();
        Ok(())
    }

    /// Waits for and removes the oldest item (for the one consumer, the dispatcher).
    pub async fn pop(&self) -> WorkItem {
        loop {
            if let Some(item) = self.queue.borrow_mut().pop() {
                return item;
            }
            self.ready.notified().await;
        }
    }

    /// Removes the oldest item without waiting.
    pub fn try_pop(&self) -> Option<WorkItem> {
        self.queue.borrow_mut().pop()
    }

    /// (items queued, capacity, stats), for status reports.
    pub fn snapshot(&self) -> (usize, usize, QueueStats) {
        let q = self.queue.borrow();
        (q.len(), q.capacity(), q.stats())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(n: usize) -> WorkItem {
        WorkItem {
            source: Endpoint::Device("A".into()),
            topic: "t".into(),
            payload: Bytes::from(vec![0u8; n]),
        }
    }

    #[test]
    fn full_queue_drops_the_new_item_and_counts() {
        let mut q = WorkQueue::new(3, 1 << 20);
        for _ in 0..3 {
            q.push(item(10)).unwrap();
        }
        assert_eq!(q.push(item(10)), Err(Refused::Full));
        assert_eq!(q.push(item(10)), Err(Refused::Full));
        assert_eq!(q.len(), 3);
        let s = q.stats();
        assert_eq!((s.accepted, s.dropped_full, s.high_water), (3, 2, 3));
        // FIFO, and room again after a pop.
        let first = q.pop().unwrap();
        assert_eq!(first.payload.len(), 10);
        q.push(item(1)).unwrap();
        assert_eq!(q.len(), 3);
    }

    #[test]
    fn byte_budget_is_a_bound_too() {
        let mut q = WorkQueue::new(100, 1000);
        q.push(item(499)).unwrap(); // 500 with the topic
        q.push(item(499)).unwrap();
        assert_eq!(q.bytes(), 1000);
        assert_eq!(q.push(item(0)), Err(Refused::Full));
        q.pop();
        assert_eq!(q.bytes(), 500);
        q.push(item(0)).unwrap();
    }

    #[test]
    fn oversize_payloads_are_refused() {
        let mut q = WorkQueue::new(4, usize::MAX);
        assert_eq!(
            q.push(item(limits::MAX_PAYLOAD_BYTES + 1)),
            Err(Refused::Oversize)
        );
        q.push(item(limits::MAX_PAYLOAD_BYTES)).unwrap();
        assert_eq!(q.stats().dropped_oversize, 1);
    }

    #[test]
    fn capacity_is_allocated_up_front() {
        let q = WorkQueue::new(1024, 1 << 20);
        assert!(q.items.capacity() >= 1024);
        let mut q = WorkQueue::new(2, 1 << 20);
        let cap = q.items.capacity();
        for _ in 0..1000 {
            let _ = q.push(item(1));
        }
        assert_eq!(q.items.capacity(), cap, "a full queue must not grow");
    }

    #[test]
    fn shared_queue_wakes_its_consumer() {
        let q = SharedQueue::new(8, 1 << 20);
        let ex = async_executor::LocalExecutor::new();
        let got = Rc::new(Cell::new(0usize));
        let (q2, got2) = (q.clone(), got.clone());
        let task = ex.spawn(async move {
            for _ in 0..2 {
                let it = q2.pop().await;
                got2.set(got2.get() + it.payload.len());
            }
        });
        assert!(!ex.try_tick() || got.get() == 0);
        q.push(item(3)).unwrap();
        q.push(item(4)).unwrap();
        futures_lite::future::block_on(ex.run(task));
        assert_eq!(got.get(), 7);
    }
}
