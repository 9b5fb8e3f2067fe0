//! FileSystem spool storage: append-only segment files plus an atomically replaced marker.
//!
//! Directory `WRITE_DIR/ggc/var/state/spool/`:
//! * `<first-seq, 16 hex>.seg`: records (see [`super::record`]) in sequence order. A new
//!   segment starts after [`SPOOL_SEGMENT_BYTES`] and at every open, so a file is never
//!   appended to after a crash.
//! * `head`: 8 bytes, the lowest sequence number still live; everything below it was
//!   acknowledged or dropped. Written to `head.tmp` then renamed, so it is old or new, never torn.
//! * `*.corrupt`: segments set aside because they are damaged (kept for a human to look at).
//!
//! Segments are deleted whole once every record in them is below `head`. No fsync per record:
//! a record written before `kill -9` is in the page cache and survives; a power cut can lose the
//! last unsynced records, which then look like a torn tail. Segments are fsynced when they are
//! closed.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::record::{self, DecodeError, HEADER_BYTES, MAX_BODY_BYTES};
use crate::limits::{SPOOL_RECORD_OVERHEAD_BYTES, SPOOL_SEGMENT_BYTES};

/// Where a record lives on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskLoc {
    pub segment: u64,
    /// Segments stay far below 4 GiB ([`SPOOL_SEGMENT_BYTES`] plus one record).
    pub offset: u32,
    pub len: u32,
}

/// A live record found when opening: its place, sequence and message size.
#[derive(Debug, Clone, Copy)]
pub struct Recovered {
    pub seq: u64,
    pub loc: DiskLoc,
    /// Topic plus payload bytes.
    pub message_bytes: u64,
}

/// What opening found besides live records.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OpenReport {
    /// Torn records cut off the end of the last segment.
    pub torn_tails: u64,
    /// Segments renamed to `*.corrupt`.
    pub corrupt_segments: u64,
    /// Highest sequence number seen in any record (0 when none).
    pub max_seq: u64,
    /// The head marker: every sequence number below it is gone.
    pub head: u64,
    /// Oldest live records left out because the newer ones already fill the budget.
    pub over_budget: u64,
}

/// The live records found while opening, newest kept within a byte budget as they are found,
/// so a spool directory far bigger than the budget (left by a bigger `GG_CONFIG_MAX_SIZE_BYTES`,
/// or damaged) never costs more index memory than the budget allows.
struct Live {
    records: VecDeque<Recovered>,
    bytes: u64,
    budget: u64,
    /// Records pushed so far (to find one segment's records again).
    pushed: u64,
}

impl Live {
    fn push(&mut self, r: Recovered, report: &mut OpenReport) {
        self.bytes += r.cost();
        self.records.push_back(r);
        self.pushed += 1;
        while self.bytes > self.budget {
            let Some(old) = self.records.pop_front() else {
                break;
            };
            self.bytes -= old.cost();
            report.over_budget += 1;
        }
    }

    /// Forgets the records pushed since `pushed` was `mark` (a segment found corrupt).
    fn forget_since(&mut self, mark: u64) {
        let n = (self.pushed - mark).min(self.records.len() as u64);
        for _ in 0..n {
            if let Some(r) = self.records.pop_back() {
                self.bytes -= r.cost();
            }
        }
    }
}

impl Recovered {
    /// What the record costs against the spool budget (as `super::cost` computes it).
    pub fn cost(&self) -> u64 {
        self.message_bytes + SPOOL_RECORD_OVERHEAD_BYTES
    }
}

struct Segment {
    id: u64,
    last_seq: u64,
}

/// The open segment directory.
pub struct Store {
    dir: PathBuf,
    /// Closed segments, oldest first (the active one is not in here).
    closed: VecDeque<Segment>,
    active: Option<(Segment, File, u64)>,
    head: u64,
    head_written: u64,
    buf: Vec<u8>,
}

fn seg_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016x}.seg"))
}

impl Store {
    /// Opens (creating) `dir`, drops torn tails, sets corrupt segments aside. Returns the live
    /// records, oldest first: the newest that fit in `budget` bytes (the rest are counted in
    /// [`OpenReport::over_budget`]). Only failing to create or list the directory is an error.
    pub fn open(dir: &Path, budget: u64) -> io::Result<(Store, VecDeque<Recovered>, OpenReport)> {
        fs::create_dir_all(dir)?;
        let head = read_head(&dir.join("head"));
        let mut ids: Vec<u64> = Vec::new();
        for ent in fs::read_dir(dir)? {
            let name = ent?.file_name();
            let name = name.to_string_lossy();
            if let Some(hex) = name.strip_suffix(".seg") {
                match u64::from_str_radix(hex, 16) {
                    Ok(id) if hex.len() == 16 => ids.push(id),
                    _ => log::warn!("spool: ignoring unexpected file {name}"),
                }
            }
        }
        ids.sort_unstable();
        let mut store = Store {
            dir: dir.to_path_buf(),
            closed: VecDeque::new(),
            active: None,
            head,
            head_written: head,
            buf: Vec::new(),
        };
        let mut live = Live {
            records: VecDeque::new(),
            bytes: 0,
            budget,
            pushed: 0,
        };
        let mut report = OpenReport {
            head,
            ..OpenReport::default()
        };
        let n = ids.len();
        for (i, id) in ids.into_iter().enumerate() {
            let path = seg_path(dir, id);
            let mark = live.pushed;
            match scan_segment(&path, id, head, i + 1 == n, &mut live, &mut report) {
                Ok(Some(last_seq)) => store.closed.push_back(Segment { id, last_seq }),
                // No record (crashed before the first write): delete it, or a new segment
                // could get the same name and be deleted with it later.
                Ok(None) => {
                    if let Err(e) = fs::remove_file(&path) {
                        log::warn!("spool: cannot delete empty {}: {e}", path.display());
                    }
                }
                Err(why) => {
                    live.forget_since(mark);
                    report.corrupt_segments += 1;
                    let aside = path.with_extension("seg.corrupt");
                    log::error!(
                        "spool: segment {} is damaged ({why}); its messages are dropped and the \
                         file is set aside as {}",
                        path.display(),
                        aside.display()
                    );
                    if let Err(e) = fs::rename(&path, &aside) {
                        log::error!("spool: cannot set {} aside: {e}", path.display());
                    }
                }
            }
        }
        store.delete_consumed();
        Ok((store, live.records, report))
    }

    /// Appends one record; returns where it went.
    pub fn append(
        &mut self,
        seq: u64,
        qos: u8,
        topic: &str,
        payload: &[u8],
    ) -> io::Result<DiskLoc> {
        if self
            .active
            .as_ref()
            .is_some_and(|(_, _, size)| *size >= SPOOL_SEGMENT_BYTES)
        {
            self.close_active();
        }
        if self.active.is_none() {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(seg_path(&self.dir, seq))?;
            self.active = Some((
                Segment {
                    id: seq,
                    last_seq: seq,
                },
                file,
                0,
            ));
        }
        self.buf.clear();
        record::encode_record(&mut self.buf, seq, qos, topic, payload);
        let Some((seg, file, size)) = self.active.as_mut() else {
            return Err(io::Error::other("no active segment"));
        };
        // One write call per record: a crash leaves it whole or as a torn tail.
        if let Err(e) = file.write_all(&self.buf) {
            // Cut off any partial record (disk full, I/O error) so the next append starts
            // clean; if even that fails, a reopen sees it as a torn tail or damage.
            let _ = file.set_len(*size);
            return Err(e);
        }
        let loc = DiskLoc {
            segment: seg.id,
            offset: *size as u32,
            len: self.buf.len() as u32,
        };
        *size += self.buf.len() as u64;
        seg.last_seq = seq;
        Ok(loc)
    }

    /// Reads a record back, checking its checksum again (the disk may have changed under us).
    pub fn read(&self, loc: DiskLoc) -> Result<(u8, String, Vec<u8>), String> {
        let len = loc.len as usize;
        if !(HEADER_BYTES..=HEADER_BYTES + MAX_BODY_BYTES).contains(&len) {
            return Err("bad record length in index".into());
        }
        let file = File::open(seg_path(&self.dir, loc.segment)).map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, u64::from(loc.offset))
            .map_err(|e| e.to_string())?;
        let (rec, _) = record::decode_record(&buf).map_err(|e| e.to_string())?;
        Ok((rec.qos, rec.topic.to_owned(), rec.payload.to_vec()))
    }

    /// Everything below `head` is gone: delete whole segments that hold nothing else.
    /// The marker is written first, so a crash in between only leaves files to delete again.
    pub fn set_head(&mut self, head: u64) {
        self.head = head;
        if self.closed.front().is_some_and(|s| s.last_seq < head) {
            self.write_head();
            self.delete_consumed();
        }
    }

    /// Writes the head marker if it moved since last written (called on a timer).
    pub fn flush(&mut self) {
        if self.head != self.head_written {
            self.write_head();
        }
    }

    fn write_head(&mut self) {
        let tmp = self.dir.join("head.tmp");
        let res = fs::write(&tmp, self.head.to_le_bytes())
            .and_then(|_| fs::rename(&tmp, self.dir.join("head")));
        match res {
            Ok(()) => self.head_written = self.head,
            Err(e) => log::warn!("spool: cannot write head marker: {e}"),
        }
    }

    fn delete_consumed(&mut self) {
        while let Some(seg) = self.closed.front() {
            if seg.last_seq >= self.head {
                break;
            }
            let path = seg_path(&self.dir, seg.id);
            if let Err(e) = fs::remove_file(&path) {
                if e.kind() != io::ErrorKind::NotFound {
                    log::warn!("spool: cannot delete {}: {e}", path.display());
                }
            }
            self.closed.pop_front();
        }
    }

    fn close_active(&mut self) {
        if let Some((seg, file, _)) = self.active.take() {
            let _ = file.sync_data();
            self.closed.push_back(seg);
        }
    }
}

/// The head marker: 8 bytes, little-endian; anything else (missing, damaged) reads as 0, so
/// everything on disk counts as unacknowledged (resent: at-least-once). Reads at most 9 bytes.
fn read_head(path: &Path) -> u64 {
    let mut b = Vec::with_capacity(9);
    let read = File::open(path).and_then(|f| f.take(9).read_to_end(&mut b));
    match (read, <[u8; 8]>::try_from(b.as_slice())) {
        (Ok(_), Ok(bytes)) => u64::from_le_bytes(bytes),
        _ => 0,
    }
}

/// Reads one segment, pushing its live records (seq >= head). Returns its last sequence number
/// (`None` when it holds no record), or why it is corrupt. A torn record at the end of the last
/// segment is cut off.
fn scan_segment(
    path: &Path,
    id: u64,
    head: u64,
    is_last: bool,
    live: &mut Live,
    report: &mut OpenReport,
) -> Result<Option<u64>, String> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| e.to_string())?;
    let file_len = file.metadata().map_err(|e| e.to_string())?.len();
    let mut offset = 0u64;
    let mut last_seq = id;
    let mut buf = Vec::new();
    while offset < file_len {
        let fail = match read_record(&mut file, &mut buf) {
            Ok(total) => match record::decode_record(&buf) {
                Ok((rec, _))
                    if (offset == 0 && rec.seq == id) || (offset > 0 && rec.seq > last_seq) =>
                {
                    last_seq = rec.seq;
                    report.max_seq = report.max_seq.max(rec.seq);
                    if rec.seq >= head {
                        let r = Recovered {
                            seq: rec.seq,
                            loc: DiskLoc {
                                segment: id,
                                offset: offset as u32,
                                len: total as u32,
                            },
                            message_bytes: (rec.topic.len() + rec.payload.len()) as u64,
                        };
                        live.push(r, report);
                    }
                    offset += total as u64;
                    continue;
                }
                Ok(_) => DecodeError::Malformed, // sequence went backwards
                Err(e) => e,
            },
            Err(e) => e,
        };
        let torn = matches!(fail, DecodeError::Truncated { .. })
            || (fail == DecodeError::BadChecksum && offset + buf.len() as u64 == file_len);
        if is_last && torn {
            log::warn!(
                "spool: dropping a torn record at the end of {} (offset {offset})",
                path.display()
            );
            report.torn_tails += 1;
            file.set_len(offset).map_err(|e| e.to_string())?;
            return Ok((offset > 0).then_some(last_seq));
        }
        return Err(format!("{fail} at offset {offset}"));
    }
    Ok((offset > 0).then_some(last_seq))
}

/// Reads the next record from the file position into `buf` (header and body); returns its
/// total size. Running out of file is `Truncated`; a read error counts as damage.
fn read_record(file: &mut File, buf: &mut Vec<u8>) -> Result<usize, DecodeError> {
    buf.clear();
    buf.resize(HEADER_BYTES, 0);
    if read_full(file, buf).map_err(|_| DecodeError::Malformed)? < HEADER_BYTES {
        return Err(DecodeError::Truncated { need: 0 });
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if !(record::BODY_FIXED_BYTES..=MAX_BODY_BYTES).contains(&len) {
        return Err(DecodeError::Malformed);
    }
    buf.resize(HEADER_BYTES + len, 0);
    let got = read_full(file, &mut buf[HEADER_BYTES..]).map_err(|_| DecodeError::Malformed)?;
    if got < len {
        return Err(DecodeError::Truncated {
            need: HEADER_BYTES + len,
        });
    }
    Ok(HEADER_BYTES + len)
}

/// Reads until `buf` is full or EOF; returns the count read.
fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
