//! Store-and-forward for cloud-bound messages (seed-A §6.2, the GGCloudSpooler).
//!
//! A FIFO with a byte budget (`GG_CONFIG_MAX_SIZE_BYTES`). Every message costs its topic and
//! payload bytes plus [`SPOOL_RECORD_OVERHEAD_BYTES`]; when a new one does not fit, the oldest
//! are dropped and counted. A message leaves only when [`Spool::ack`] is called with its
//! sequence number (the cloud link does that on PUBACK); [`Spool::next_after`] lets the link keep
//! several in flight without removing them.
//!
//! Memory mode keeps messages in a `VecDeque` whose total cost never exceeds the budget.
//! FileSystem mode ([`store`]) keeps only a small index in memory (each entry is charged the
//! same cost, so the index too stays under the budget) and reads payloads back from disk when
//! they are sent; it survives restarts and `kill -9`.

use std::collections::VecDeque;
use std::io;
use std::path::Path;

use bytes::Bytes;

pub use crate::limits::SPOOL_RECORD_OVERHEAD_BYTES;
use crate::limits::{MAX_PAYLOAD_BYTES, SPOOL_MAX_TOPIC_BYTES};

mod record;
mod store;

pub use record::{crc32, decode_record, encode_record, DecodeError, Record};
pub use store::OpenReport;

/// One cloud-bound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub payload: Bytes,
    /// QoS upstream (1 for everything the router sends to `cloud`).
    pub qos: u8,
}

/// Counters shown by `sprig status`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SpoolStats {
    /// Messages waiting (including those in flight).
    pub messages: u64,
    /// Their cost in budget bytes.
    pub bytes: u64,
    pub budget: u64,
    /// Oldest messages dropped to make room.
    pub dropped_full: u64,
    /// Messages refused because alone they exceed the budget or the size limits.
    pub dropped_too_big: u64,
    /// Messages lost to damage on disk (read-back failures, records in corrupt segments are
    /// not known individually and are counted in `corrupt_segments`).
    pub dropped_corrupt: u64,
    /// Messages that could not be written to disk.
    pub dropped_io: u64,
    pub corrupt_segments: u64,
    pub torn_tails: u64,
}

/// Why `push` refused a message.
#[derive(Debug)]
pub enum PushError {
    /// Bigger than the whole budget or the topic/payload limits.
    TooBig,
    /// The FileSystem spool could not write it.
    Io(io::Error),
}

impl std::fmt::Display for PushError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PushError::TooBig => f.write_str("message larger than the spool budget or size limits"),
            PushError::Io(e) => write!(f, "spool write failed: {e}"),
        }
    }
}

/// Where a message's bytes are. Kept small: the index entry is part of the per-message cost.
enum Held {
    /// Topic then payload in one allocation.
    Mem {
        data: Box<[u8]>,
        topic_len: u16,
        qos: u8,
    },
    Disk(store::DiskLoc),
}

struct Entry {
    seq: u64,
    cost: u32,
    acked: bool,
    held: Held,
}

/// The spool. Not thread-safe by design: it lives on the one executor thread.
pub struct Spool {
    budget: u64,
    entries: VecDeque<Entry>,
    bytes: u64,
    /// Entries not yet acknowledged.
    unacked: u64,
    next_seq: u64,
    stats: SpoolStats,
    store: Option<store::Store>,
}

/// Budget cost of a message with these sizes.
pub fn cost(topic_len: usize, payload_len: usize) -> u64 {
    (topic_len + payload_len) as u64 + SPOOL_RECORD_OVERHEAD_BYTES
}

impl Spool {
    /// A Memory spool (lost on restart).
    pub fn memory(budget: u64) -> Spool {
        Spool {
            budget,
            entries: VecDeque::new(),
            bytes: 0,
            unacked: 0,
            next_seq: 1,
            stats: SpoolStats {
                budget,
                ..SpoolStats::default()
            },
            store: None,
        }
    }

    /// A FileSystem spool in `dir` (normally `WRITE_DIR/ggc/var/state/spool`). Damage found on
    /// disk is logged, set aside and counted; only an unusable directory is an error.
    pub fn open(dir: &Path, budget: u64) -> io::Result<Spool> {
        let (store, live, report) = store::Store::open(dir, budget)?;
        let mut spool = Spool::memory(budget);
        spool.stats.torn_tails = report.torn_tails;
        spool.stats.corrupt_segments = report.corrupt_segments;
        spool.stats.dropped_full = report.over_budget;
        if report.over_budget > 0 {
            log::warn!(
                "spool: {} oldest messages in {} left out: the newer ones fill the {budget}-byte budget",
                report.over_budget,
                dir.display()
            );
        }
        // Never reuse a number below the head marker (its segments may all be deleted): such
        // a record would look acknowledged on the next open.
        spool.next_seq = (report.max_seq + 1).max(report.head);
        spool.store = Some(store);
        for r in live {
            let cost = r.cost();
            spool.make_room(cost);
            spool.insert(Entry {
                seq: r.seq,
                cost: cost as u32,
                acked: false,
                held: Held::Disk(r.loc),
            });
        }
        spool.advance_head();
        spool.sync_stats();
        if !spool.entries.is_empty() {
            log::info!(
                "spool: {} messages ({} bytes) recovered from {}",
                spool.stats.messages,
                spool.bytes,
                dir.display()
            );
        }
        Ok(spool)
    }

    /// Queues a message; returns its sequence number. Drops the oldest messages if needed.
    pub fn push(&mut self, topic: &str, payload: Bytes, qos: u8) -> Result<u64, PushError> {
        let cost = cost(topic.len(), payload.len());
        if cost > self.budget
            || topic.is_empty()
            || topic.len() > SPOOL_MAX_TOPIC_BYTES
            || payload.len() > MAX_PAYLOAD_BYTES
        {
            self.stats.dropped_too_big += 1;
            return Err(PushError::TooBig);
        }
        let qos = qos.min(1);
        self.make_room(cost);
        let seq = self.next_seq;
        let held = match self.store.as_mut() {
            Some(store) => match store.append(seq, qos, topic, &payload) {
                Ok(loc) => Held::Disk(loc),
                Err(e) => {
                    self.stats.dropped_io += 1;
                    return Err(PushError::Io(e));
                }
            },
            None => {
                let mut data = Vec::with_capacity(topic.len() + payload.len());
                data.extend_from_slice(topic.as_bytes());
                data.extend_from_slice(&payload);
                Held::Mem {
                    data: data.into_boxed_slice(),
                    topic_len: topic.len() as u16,
                    qos,
                }
            }
        };
        self.next_seq += 1;
        self.insert(Entry {
            seq,
            cost: cost as u32,
            acked: false,
            held,
        });
        self.advance_head();
        self.sync_stats();
        Ok(seq)
    }

    /// The first unacknowledged message with a sequence number above `after` (from the start
    /// when `None`). In FileSystem mode this reads it back from disk; a record that no longer
    /// reads back cleanly is dropped, counted and skipped.
    pub fn next_after(&mut self, after: Option<u64>) -> Option<(u64, Message)> {
        loop {
            let from = match after {
                Some(a) => self.entries.partition_point(|e| e.seq <= a),
                None => 0,
            };
            let idx = from + self.entries.range(from..).position(|e| !e.acked)?;
            let entry = &self.entries[idx];
            let seq = entry.seq;
            match &entry.held {
                Held::Mem {
                    data,
                    topic_len,
                    qos,
                } => {
                    let (topic, payload) = data.split_at(usize::from(*topic_len));
                    let topic = String::from_utf8_lossy(topic).into_owned();
                    let payload = Bytes::copy_from_slice(payload);
                    return Some((
                        seq,
                        Message {
                            topic,
                            payload,
                            qos: *qos,
                        },
                    ));
                }
                Held::Disk(loc) => {
                    let read = match self.store.as_ref() {
                        Some(store) => store.read(*loc),
                        None => Err("no store".into()),
                    };
                    match read {
                        Ok((qos, topic, payload)) => {
                            return Some((
                                seq,
                                Message {
                                    topic,
                                    payload: Bytes::from(payload),
                                    qos,
                                },
                            ))
                        }
                        Err(why) => {
                            log::error!(
                                "spool: message {seq} no longer reads back ({why}); dropped"
                            );
                            self.stats.dropped_corrupt += 1;
                            self.ack(seq);
                        }
                    }
                }
            }
        }
    }

    /// The message `seq` was delivered (PUBACK): it leaves the spool. Unknown or already
    /// dropped sequence numbers are ignored. Returns whether it was live.
    pub fn ack(&mut self, seq: u64) -> bool {
        let idx = self.entries.partition_point(|e| e.seq < seq);
        let Some(entry) = self
            .entries
            .get_mut(idx)
            .filter(|e| e.seq == seq && !e.acked)
        else {
            return false;
        };
        entry.acked = true;
        self.unacked -= 1;
        self.advance_head();
        self.sync_stats();
        true
    }

    /// Persists the head marker if it moved (FileSystem mode; call it now and then).
    pub fn flush(&mut self) {
        if let Some(store) = self.store.as_mut() {
            store.flush();
        }
    }

    pub fn stats(&self) -> SpoolStats {
        self.stats
    }

    pub fn is_empty(&self) -> bool {
        self.unacked == 0
    }

    pub fn is_persistent(&self) -> bool {
        self.store.is_some()
    }

    /// Appends an entry, growing the index by an eighth at a time (never doubling), so the
    /// index's spare capacity stays inside the per-message overhead.
    fn insert(&mut self, entry: Entry) {
        if self.entries.len() == self.entries.capacity() {
            let max = (self.budget / SPOOL_RECORD_OVERHEAD_BYTES) as usize;
            let grow = (self.entries.len() / 8)
                .max(64)
                .min(max.saturating_sub(self.entries.len()).max(1));
            self.entries.reserve_exact(grow);
        }
        self.bytes += u64::from(entry.cost);
        self.unacked += 1;
        self.entries.push_back(entry);
    }

    fn make_room(&mut self, cost: u64) {
        while self.bytes + cost > self.budget {
            let Some(old) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= u64::from(old.cost);
            if !old.acked {
                self.unacked -= 1;
                self.stats.dropped_full += 1;
                log::warn!(
                    "spool: full ({} bytes); dropped the oldest message ({})",
                    self.budget,
                    old.seq
                );
            }
        }
    }

    /// Pops acknowledged entries off the front and tells the store how far it may delete.
    fn advance_head(&mut self) {
        while self.entries.front().is_some_and(|e| e.acked) {
            if let Some(e) = self.entries.pop_front() {
                self.bytes -= u64::from(e.cost);
            }
        }
        let head = self.entries.front().map_or(self.next_seq, |e| e.seq);
        if let Some(store) = self.store.as_mut() {
            store.set_head(head);
        }
    }

    fn sync_stats(&mut self) {
        self.stats.messages = self.unacked;
        self.stats.bytes = self.bytes;
    }
}

#[cfg(test)]
mod tests;
