//! The one bounded work queue shared by every producer (devices through the broker, the cloud
//! link), drained by the dispatcher. Capacity is `runtime.maxWorkItemCount` items and
//! [`limits::MAX_WORK_QUEUE_BYTES`] bytes; nothing ever grows past them. Two ways in:
//!
//! * [`WorkQueue::push`] (the cloud link): when a bound is hit the NEW item is dropped and
//!   counted (`queue_full`); the link then withholds its PUBACK upstream.
//! * [`WorkQueue::offer`] (device connections): backpressure. When a bound is hit the item is
//!   handed back and the queue *closes its gate*: every device connection alike then holds its
//!   one parsed PUBLISH, stops reading its socket (TCP and the device's in-flight window slow
//!   the device down) and PUBACKs only once the item is in. The gate reopens when the
//!   dispatcher has drained the queue to [`limits::WORK_QUEUE_RESUME_PERCENT`] of both bounds,
//!   so waiting connections resume together instead of one stealing each freed slot.
//!
//! [`WorkQueue`] is the sans-IO core; [`SharedQueue`] adds the wake-ups: the one consumer, and
//! the producers waiting for the gate.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

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

/// Why [`WorkQueue::offer`] did not take an item.
#[derive(Debug, Clone, PartialEq)]
pub enum Deferred {
    /// No room (or the gate is closed): the item comes back; offer it again once
    /// [`SharedQueue::room`] completes. Nothing was dropped.
    Wait(WorkItem),
    /// The payload is over [`limits::MAX_PAYLOAD_BYTES`]: dropped and counted.
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
    /// Times the gate closed: device connections paused until the queue drained.
    pub backpressure_pauses: u64,
    /// Device PUBLISHes that had to wait for room (each taken later, none dropped).
    pub deferred: u64,
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
    /// Closed by an `offer` that found no room; reopened by `pop` at the resume mark.
    gate_closed: bool,
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
            gate_closed: false,
        }
    }

    fn has_room_for(&self, size: usize) -> bool {
        self.items.len() < self.capacity && self.bytes + size <= self.max_bytes
    }

    fn refuse_oversize(&mut self, item: &WorkItem) {
        self.stats.dropped_oversize += 1;
        log::warn!(
            "dropped a {}-byte message from {:?} on {:?}: payloads over {} bytes are refused",
            item.payload.len(),
            item.source,
            item.topic,
            limits::MAX_PAYLOAD_BYTES
        );
    }

    fn append(&mut self, item: WorkItem) {
        self.bytes += item.size();
        self.items.push_back(item);
        self.stats.accepted += 1;
        self.stats.high_water = self.stats.high_water.max(self.items.len());
    }

    /// Queues `item` if there is room and the gate is open; else hands it back (and closes the
    /// gate) so the producer can wait: backpressure for device connections. Never drops a
    /// message that fits the payload limit.
    pub fn offer(&mut self, item: WorkItem) -> Result<(), Deferred> {
        if item.payload.len() > limits::MAX_PAYLOAD_BYTES {
            self.refuse_oversize(&item);
            return Err(Deferred::Oversize);
        }
        if self.items.is_empty() {
            // Nothing left to drain: whatever closed the gate is gone.
            self.gate_closed = false;
        }
        if self.gate_closed || !self.has_room_for(item.size()) {
            if !self.gate_closed {
                self.gate_closed = true;
                self.stats.backpressure_pauses += 1;
                log::debug!(
                    "work queue full ({} items, {} bytes): device connections pause reading",
                    self.items.len(),
                    self.bytes
                );
            }
            self.stats.deferred += 1;
            return Err(Deferred::Wait(item));
        }
        self.append(item);
        Ok(())
    }

    /// Whether device connections must wait (see [`WorkQueue::offer`]).
    pub fn gate_closed(&self) -> bool {
        self.gate_closed
    }

    /// Queues `item`, or drops it and counts why. Never blocks, never grows past the bounds.
    pub fn push(&mut self, item: WorkItem) -> Result<(), Refused> {
        if item.payload.len() > limits::MAX_PAYLOAD_BYTES {
            self.refuse_oversize(&item);
            return Err(Refused::Oversize);
        }
        if !self.has_room_for(item.size()) {
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
        self.append(item);
        Ok(())
    }

    /// The oldest item, if any.
    pub fn pop(&mut self) -> Option<WorkItem> {
        let item = self.items.pop_front()?;
        self.bytes -= item.size();
        Some(item)
    }

    /// Reopens a closed gate once the queue is down to the resume mark on both bounds; `true`
    /// when it did (the caller wakes the waiting producers).
    pub fn reopen_if_drained(&mut self) -> bool {
        let pct = limits::WORK_QUEUE_RESUME_PERCENT;
        if self.gate_closed
            && self.items.len() <= self.capacity * pct / 100
            && self.bytes <= self.max_bytes / 100 * pct
        {
            self.gate_closed = false;
            return true;
        }
        false
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
        poll_fn(|cx| self.poll_notified(cx)).await
    }

    /// `notified` as a poll: `Ready` once per `notify`, else the waker is kept.
    pub fn poll_notified(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.pending.replace(false) {
            return Poll::Ready(());
        }
        let mut w = self.waker.borrow_mut();
        if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *w = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// The work queue as the executor's tasks share it: any number of producers, one consumer.
/// This is the seam for every message source (the broker, the cloud link, later Lambdas):
/// `push` a [`WorkItem`] with its source [`Endpoint`].
#[derive(Debug)]
pub struct SharedQueue {
    queue: RefCell<WorkQueue>,
    ready: Notify,
    /// Producers waiting for the gate to reopen, woken all at once in the order they came.
    /// At most one entry per connection task that paused since the last reopening
    /// (`sprig.maxConnections`); emptied on every reopening.
    room: RefCell<Vec<Waker>>,
}

/// A handle to the shared queue; clone it for each producer.
pub type QueueHandle = Rc<SharedQueue>;

impl SharedQueue {
    pub fn new(capacity: usize, max_bytes: usize) -> QueueHandle {
        Rc::new(SharedQueue {
            queue: RefCell::new(WorkQueue::new(capacity, max_bytes)),
            ready: Notify::default(),
            room: RefCell::new(Vec::new()),
        })
    }

    /// Queues `item` for the dispatcher or hands it back to wait (see [`WorkQueue::offer`]).
    pub fn offer(&self, item: WorkItem) -> Result<(), Deferred> {
        self.queue.borrow_mut().offer(item)?;
        self.ready.notify();
        Ok(())
    }

    /// Whether device connections may offer (the gate is open).
    pub fn is_open(&self) -> bool {
        !self.queue.borrow().gate_closed()
    }

    /// Completes once device connections may offer again (the gate is open).
    pub async fn room(&self) {
        poll_fn(|cx| self.poll_room(cx)).await
    }

    /// `room` as a poll: `Ready` while the gate is open, else the waker joins the waiters.
    pub fn poll_room(&self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.queue.borrow().gate_closed() {
            return Poll::Ready(());
        }
        let mut room = self.room.borrow_mut();
        if !room.iter().any(|w| w.will_wake(cx.waker())) {
            room.push(cx.waker().clone());
        }
        Poll::Pending
    }

    fn popped(&self, item: Option<WorkItem>) -> Option<WorkItem> {
        if item.is_some() && self.queue.borrow_mut().reopen_if_drained() {
            let waiting = std::mem::take(&mut *self.room.borrow_mut());
            for w in waiting {
                w.wake();
            }
        }
        item
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
            let item = self.queue.borrow_mut().pop();
            if let Some(item) = self.popped(item) {
                return item;
            }
            self.ready.notified().await;
        }
    }

    /// Removes the oldest item without waiting.
    pub fn try_pop(&self) -> Option<WorkItem> {
        let item = self.queue.borrow_mut().pop();
        self.popped(item)
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
    fn offer_hands_back_when_full_and_the_gate_reopens_at_the_resume_mark() {
        let mut q = WorkQueue::new(4, 1 << 20);
        for _ in 0..4 {
            q.offer(item(1)).unwrap();
        }
        assert_eq!(q.offer(item(2)), Err(Deferred::Wait(item(2))));
        assert!(q.gate_closed());
        q.pop();
        // Room for one, but the gate stays closed until the queue is down to the mark, so
        // the next producer cannot take the slot the first waiter is waiting for.
        assert!(!q.reopen_if_drained());
        assert!(matches!(q.offer(item(3)), Err(Deferred::Wait(_))));
        q.pop();
        assert!(q.reopen_if_drained(), "2 of 4 is the 50 % mark");
        q.offer(item(2)).unwrap();
        let s = q.stats();
        assert_eq!((s.backpressure_pauses, s.deferred), (1, 2));
        assert_eq!(s.dropped_full, 0, "offer never drops");
        assert_eq!(
            q.offer(item(limits::MAX_PAYLOAD_BYTES + 1)),
            Err(Deferred::Oversize)
        );
        // push (the cloud link) still drops the new item when full, gate or not.
        q.push(item(1)).unwrap();
        assert_eq!(q.push(item(1)), Err(Refused::Full));
    }

    #[test]
    fn the_byte_bound_closes_the_gate_too() {
        let mut q = WorkQueue::new(100, 1000);
        q.offer(item(899)).unwrap();
        assert!(matches!(q.offer(item(200)), Err(Deferred::Wait(_))));
        q.pop();
        assert!(q.reopen_if_drained());
        q.offer(item(200)).unwrap();
    }

    #[test]
    fn waiting_producers_are_woken_when_the_dispatcher_drains() {
        let q = SharedQueue::new(4, 1 << 20);
        let ex = async_executor::LocalExecutor::new();
        for _ in 0..4 {
            q.offer(item(1)).unwrap();
        }
        let back = match q.offer(item(5)) {
            Err(Deferred::Wait(it)) => it,
            other => panic!("{other:?}"),
        };
        let done = Rc::new(Cell::new(false));
        let (q2, done2) = (q.clone(), done.clone());
        let producer = ex.spawn(async move {
            q2.room().await;
            q2.offer(back).unwrap();
            done2.set(true);
        });
        while ex.try_tick() {}
        assert!(!done.get(), "the gate is closed");
        assert!(q.try_pop().is_some());
        while ex.try_tick() {}
        assert!(!done.get(), "3 of 4: above the resume mark");
        assert!(q.try_pop().is_some());
        while ex.try_tick() {}
        assert!(done.get(), "2 of 4: reopened, the waiter was woken");
        futures_lite::future::block_on(ex.run(producer));
        assert_eq!(q.snapshot().0, 3);
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
