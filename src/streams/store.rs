//! The stream store: named streams of sequence-numbered messages in segments, File or Memory,
//! bounded per stream (`maxSize`, `strategyOnFull`, `timeToLiveMillis`) and all together
//! (`sprig.streamStoreMaxBytes`). Synchronous, no sockets: the server and the exporter call it.
//!
//! On disk (File streams): `ROOT/s<id>/meta` (CBOR: definition, next sequence number, export
//! progress; replaced by tmp + rename) and `ROOT/s<id>/<first seq, 20 digits>.seg` segments of
//! records. A record is the spool's shape (`len: u32` | `crc: u32` CRC-32 of the body | body,
//! little-endian) with body = `seq: u64` | `ingest_ms: u64` | payload. Every append is written
//! to the kernel before it is acknowledged (so `kill -9` loses nothing acknowledged) and
//! fsynced first when the stream has `flushOnWrite` (so power loss loses nothing acknowledged
//! either). On open, a torn tail is cut and a damaged record ends its segment (logged).

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use minicbor::{Decoder, Encoder};

use super::wire::{self, Definition, Persistence, Status, Strategy};
use crate::limits;
use crate::spool::crc32;

/// Bytes of a record before its payload: length, checksum, sequence number, ingest time.
pub const RECORD_HEADER_BYTES: u64 = 24;

/// A message as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub seq: u64,
    pub ingest_ms: u64,
    pub payload: Vec<u8>,
}

/// Why the store refused an operation; each maps to the client's status code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    NotFound(String),
    Exists(String),
    TooManyStreams,
    /// The stream holds `maxSize` bytes and its strategy is RejectNewData (or the message is
    /// bigger than `maxSize`).
    StreamFull {
        name: String,
        max: u64,
    },
    /// All streams together hold `sprig.streamStoreMaxBytes`.
    StoreFull {
        max: u64,
    },
    UpdateNotAllowed(String),
    Io(String),
}

impl StoreError {
    /// The client's status for this error.
    pub fn status(&self) -> Status {
        match self {
            StoreError::NotFound(_) => Status::ResourceNotFound,
            StoreError::Exists(_) | StoreError::TooManyStreams | StoreError::StreamFull { .. } => {
                Status::InvalidRequest
            }
            StoreError::StoreFull { .. } => Status::OutOfMemory,
            StoreError::UpdateNotAllowed(_) => Status::UpdateNotAllowed,
            StoreError::Io(_) => Status::UnknownFailure,
        }
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::NotFound(n) => write!(f, "stream {n:?} does not exist"),
            StoreError::Exists(n) => write!(f, "stream {n:?} already exists"),
            StoreError::TooManyStreams => write!(
                f,
                "sprig holds at most {} streams; delete one first",
                limits::STREAM_MAX_STREAMS
            ),
            StoreError::StreamFull { name, max } => write!(
                f,
                "stream {name:?} is full ({max} bytes, maxSize) and its strategyOnFull is RejectNewData"
            ),
            StoreError::StoreFull { max } => write!(
                f,
                "the stream store is full: all streams together hold {max} bytes (sprig.streamStoreMaxBytes in config.json)"
            ),
            StoreError::UpdateNotAllowed(m) => f.write_str(m),
            StoreError::Io(m) => write!(f, "stream storage failed: {m}"),
        }
    }
}

/// Counters shown by `sprig status`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    pub appended: u64,
    pub rejected_stream_full: u64,
    pub rejected_store_full: u64,
    /// Messages dropped by OverwriteOldestData.
    pub overwritten: u64,
    /// Messages dropped by timeToLiveMillis.
    pub expired: u64,
    /// Bytes cut from torn or damaged segment tails when opening.
    pub recovered_cut_bytes: u64,
    pub io_errors: u64,
}

/// Progress of one export of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportProgress {
    pub identifier: String,
    /// The next sequence number to export.
    pub next: u64,
    pub last_time_ms: u64,
    pub error: Option<String>,
    pub messages: u64,
    pub bytes: u64,
}

enum SegData {
    Mem(Vec<u8>),
    File(PathBuf),
}

struct Segment {
    first: u64,
    next: u64,
    bytes: u64,
    newest_ingest: u64,
    /// (sequence number, offset) every `STREAM_INDEX_STRIDE_BYTES`.
    index: Vec<(u64, u64)>,
    data: SegData,
}

impl Segment {
    fn note(&mut self, seq: u64, ingest: u64, len: u64) {
        let last = self.index.last().map(|e| e.1);
        if last.is_none_or(|o| self.bytes - o >= limits::STREAM_INDEX_STRIDE_BYTES) {
            self.index.push((seq, self.bytes));
        }
        self.next = seq + 1;
        self.bytes += len;
        self.newest_ingest = self.newest_ingest.max(ingest);
    }
}

struct Stream {
    id: u32,
    def: Definition,
    dir: Option<PathBuf>,
    segs: VecDeque<Segment>,
    next_seq: u64,
    bytes: u64,
    active: Option<File>,
    exports: Vec<ExportProgress>,
}

impl Stream {
    fn oldest(&self) -> u64 {
        self.segs.front().map_or(self.next_seq, |s| s.first)
    }
}

/// What describe shows of a stream.
pub struct Info<'a> {
    pub definition: &'a Definition,
    pub oldest: u64,
    pub newest: i64,
    pub bytes: u64,
    pub exports: &'a [ExportProgress],
}

/// All streams.
pub struct Store {
    root: PathBuf,
    streams: Vec<Stream>,
    max_bytes: u64,
    total: u64,
    pub counters: Counters,
}

fn io_err(what: &str, path: &Path, e: io::Error) -> StoreError {
    StoreError::Io(format!("{what} {}: {e}", path.display()))
}

/// Encodes one record into `out`.
pub fn encode_record(out: &mut Vec<u8>, seq: u64, ingest_ms: u64, payload: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&((16 + payload.len()) as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&ingest_ms.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Reads the record header at the start of `h`: (seq, ingest, payload length, crc).
fn header(h: &[u8; 24]) -> Option<(u64, u64, usize, u32)> {
    let len = u32::from_le_bytes(h[0..4].try_into().ok()?) as usize;
    if !(17..=16 + limits::STREAM_MAX_MESSAGE_BYTES).contains(&len) {
        return None;
    }
    let crc = u32::from_le_bytes(h[4..8].try_into().ok()?);
    let seq = u64::from_le_bytes(h[8..16].try_into().ok()?);
    let ingest = u64::from_le_bytes(h[16..24].try_into().ok()?);
    Some((seq, ingest, len - 16, crc))
}

fn body_crc(h: &[u8; 24], payload: &[u8]) -> u32 {
    let mut body = Vec::with_capacity(16 + payload.len());
    body.extend_from_slice(&h[8..]);
    body.extend_from_slice(payload);
    crc32(&body)
}

/// Walks the records of a byte source from its current position; `f` gets each record and
/// returns false to stop. Returns the bytes of whole valid records walked.
fn walk(r: &mut impl Read, mut f: impl FnMut(u64, u64, &[u8], u64) -> bool) -> (u64, bool) {
    let mut used = 0u64;
    let mut h = [0u8; 24];
    let mut payload = Vec::new();
    loop {
        if r.read_exact(&mut h).is_err() {
            return (used, false);
        }
        let Some((seq, ingest, len, crc)) = header(&h) else {
            return (used, true);
        };
        payload.resize(len, 0);
        if r.read_exact(&mut payload).is_err() {
            return (used, false);
        }
        if body_crc(&h, &payload) != crc {
            return (used, true);
        }
        let rec = RECORD_HEADER_BYTES + len as u64;
        if !f(seq, ingest, &payload, rec) {
            return (used + rec, false);
        }
        used += rec;
    }
}

fn seg_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.seg"))
}

impl Store {
    /// Opens (creates) the store under `root` and recovers every File stream found there.
    /// Unreadable streams are set aside (`*.corrupt`) and logged, never fatal.
    pub fn open(root: &Path, max_bytes: u64) -> Store {
        let mut store = Store {
            root: root.to_path_buf(),
            streams: Vec::new(),
            max_bytes,
            total: 0,
            counters: Counters::default(),
        };
        if let Err(e) = fs::create_dir_all(root) {
            log::error!(target: "GGStreamManager",
                "stream manager: cannot create the store directory {}: {e}; File streams will fail",
                root.display()
            );
            return store;
        }
        let mut dirs: Vec<(u32, PathBuf)> = match fs::read_dir(root) {
            Ok(rd) => rd
                .flatten()
                .filter_map(|e| {
                    let n = e.file_name().into_string().ok()?;
                    let id = n.strip_prefix('s')?.parse().ok()?;
                    Some((id, e.path()))
                })
                .collect(),
            Err(e) => {
                log::error!(target: "GGStreamManager",
                    "stream manager: cannot list {}: {e}", root.display()
                );
                Vec::new()
            }
        };
        dirs.sort();
        for (id, dir) in dirs {
            if store.streams.len() >= limits::STREAM_MAX_STREAMS {
                log::warn!(target: "GGStreamManager",
                    "stream manager: {} left alone: over {} streams",
                    dir.display(),
                    limits::STREAM_MAX_STREAMS
                );
                continue;
            }
            match store.recover(id, &dir) {
                Ok(s) => {
                    log::info!(target: "GGStreamManager",
                        "stream manager: stream {:?} recovered: sequence numbers {}..{}, {} bytes",
                        s.def.name,
                        s.oldest(),
                        s.next_seq,
                        s.bytes
                    );
                    store.total += s.bytes;
                    store.streams.push(s);
                }
                Err(e) => {
                    let aside = dir.with_extension("corrupt");
                    log::error!(target: "GGStreamManager",
                        "stream manager: {}: {e}; set aside as {}",
                        dir.display(),
                        aside.display()
                    );
                    let _ = fs::rename(&dir, &aside);
                }
            }
        }
        if store.total > store.max_bytes {
            log::warn!(target: "GGStreamManager",
                "stream manager: the store holds {} bytes, over sprig.streamStoreMaxBytes {}: appends are refused until streams shrink",
                store.total,
                store.max_bytes
            );
        }
        store
    }

    fn recover(&mut self, id: u32, dir: &Path) -> Result<Stream, String> {
        let meta = fs::read(dir.join("meta")).map_err(|e| format!("meta: {e}"))?;
        let (def, next_meta, progress) = decode_meta(&meta).map_err(|e| format!("meta: {e}"))?;
        let mut files: Vec<(u64, PathBuf)> = fs::read_dir(dir)
            .map_err(|e| e.to_string())?
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().into_string().ok()?;
                Some((n.strip_suffix(".seg")?.parse().ok()?, e.path()))
            })
            .collect();
        files.sort();
        let mut segs = VecDeque::new();
        for (first, path) in files {
            let mut seg = Segment {
                first,
                next: first,
                bytes: 0,
                newest_ingest: 0,
                index: Vec::new(),
                data: SegData::File(path.clone()),
            };
            let file = File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            let (valid, _) = walk(&mut BufReader::new(file), |seq, ingest, _, rec| {
                seg.note(seq, ingest, rec);
                true
            });
            if valid < len {
                log::warn!(target: "GGStreamManager",
                    "stream manager: {}: {} bytes after the last whole record cut (torn write or damage)",
                    path.display(),
                    len - valid
                );
                self.counters.recovered_cut_bytes += len - valid;
                let cut = fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(valid));
                if let Err(e) = cut {
                    return Err(format!("{}: cannot cut the torn tail: {e}", path.display()));
                }
            }
            if seg.bytes == 0 {
                let _ = fs::remove_file(&path);
                continue;
            }
            segs.push_back(seg);
        }
        let next_seq = segs.back().map_or(0, |s| s.next).max(next_meta);
        let bytes = segs.iter().map(|s| s.bytes).sum();
        let exports = export_list(&def, &progress);
        Ok(Stream {
            id,
            def,
            dir: Some(dir.to_path_buf()),
            segs,
            next_seq,
            bytes,
            active: None,
            exports,
        })
    }

    fn find(&self, name: &str) -> Result<usize, StoreError> {
        self.streams
            .iter()
            .position(|s| s.def.name == name)
            .ok_or_else(|| StoreError::NotFound(name.to_owned()))
    }

    /// Stream names, in creation order.
    pub fn names(&self) -> Vec<String> {
        self.streams.iter().map(|s| s.def.name.clone()).collect()
    }

    /// Bytes held by all streams, and the bound.
    pub fn usage(&self) -> (u64, u64) {
        (self.total, self.max_bytes)
    }

    /// Creates a stream.
    pub fn create(&mut self, def: Definition) -> Result<(), StoreError> {
        if self.find(&def.name).is_ok() {
            return Err(StoreError::Exists(def.name));
        }
        if self.streams.len() >= limits::STREAM_MAX_STREAMS {
            return Err(StoreError::TooManyStreams);
        }
        // Directory `s<id>`: past every stream's id and any directory already there.
        let mut id = self.streams.iter().map(|s| s.id + 1).max().unwrap_or(0);
        while self.root.join(format!("s{id}")).exists() {
            id += 1;
        }
        let dir = match def.persistence {
            Persistence::Memory => None,
            Persistence::File => {
                let dir = self.root.join(format!("s{id}"));
                fs::create_dir_all(&dir).map_err(|e| io_err("cannot create", &dir, e))?;
                Some(dir)
            }
        };
        let exports = export_list(&def, &[]);
        let s = Stream {
            id,
            def,
            dir,
            segs: VecDeque::new(),
            next_seq: 0,
            bytes: 0,
            active: None,
            exports,
        };
        if let Err(e) = write_meta(&s) {
            if let Some(d) = &s.dir {
                let _ = fs::remove_dir_all(d);
            }
            return Err(e);
        }
        self.streams.push(s);
        Ok(())
    }

    /// Replaces a stream's definition; its persistence cannot change.
    pub fn update(&mut self, def: Definition) -> Result<(), StoreError> {
        let i = self.find(&def.name)?;
        let s = &mut self.streams[i];
        if s.def.persistence != def.persistence {
            return Err(StoreError::UpdateNotAllowed(format!(
                "stream {:?}: persistence cannot change; delete and re-create the stream",
                def.name
            )));
        }
        let progress: Vec<(String, u64)> = s
            .exports
            .iter()
            .map(|e| (e.identifier.clone(), e.next))
            .collect();
        let old = std::mem::replace(&mut s.def, def);
        let mut exports = export_list(&s.def, &progress);
        for e in &mut exports {
            if let Some(p) = s.exports.iter().find(|p| p.identifier == e.identifier) {
                *e = p.clone();
            }
        }
        s.exports = exports;
        if let Err(e) = write_meta(s) {
            s.def = old;
            return Err(e);
        }
        Ok(())
    }

    /// Deletes a stream and all its data.
    pub fn delete(&mut self, name: &str) -> Result<(), StoreError> {
        let i = self.find(name)?;
        let s = self.streams.remove(i);
        self.total -= s.bytes;
        if let Some(d) = &s.dir {
            drop(s.active);
            if let Err(e) = fs::remove_dir_all(d) {
                log::warn!(target: "GGStreamManager",
                    "stream manager: cannot remove {}: {e}", d.display()
                );
            }
        }
        Ok(())
    }

    /// Appends a message; returns its sequence number. `now_ms` is its ingest time.
    pub fn append(&mut self, name: &str, payload: &[u8], now_ms: u64) -> Result<u64, StoreError> {
        let i = self.find(name)?;
        let rec = RECORD_HEADER_BYTES + payload.len() as u64;
        let (max_size, strategy) = {
            let d = &self.streams[i].def;
            (d.max_size, d.strategy)
        };
        if rec > max_size {
            self.counters.rejected_stream_full += 1;
            return Err(StoreError::StreamFull {
                name: name.to_owned(),
                max: max_size,
            });
        }
        while self.streams[i].bytes + rec > max_size || self.total + rec > self.max_bytes {
            let stream_full = self.streams[i].bytes + rec > max_size;
            if strategy == Strategy::RejectNewData || self.streams[i].segs.is_empty() {
                return Err(if stream_full {
                    self.counters.rejected_stream_full += 1;
                    StoreError::StreamFull {
                        name: name.to_owned(),
                        max: max_size,
                    }
                } else {
                    self.counters.rejected_store_full += 1;
                    StoreError::StoreFull {
                        max: self.max_bytes,
                    }
                });
            }
            let n = self.drop_oldest(i);
            self.counters.overwritten += n;
        }
        let s = &mut self.streams[i];
        let roll = s
            .segs
            .back()
            .is_none_or(|b| b.bytes > 0 && b.bytes + rec > s.def.segment_size);
        if roll {
            let first = s.next_seq;
            let data = match &s.dir {
                None => SegData::Mem(Vec::new()),
                Some(d) => {
                    let p = seg_path(d, first);
                    s.active = None;
                    SegData::File(p)
                }
            };
            s.segs.push_back(Segment {
                first,
                next: first,
                bytes: 0,
                newest_ingest: 0,
                index: Vec::new(),
                data,
            });
        }
        let seq = s.next_seq;
        let seg = s.segs.back_mut().expect("a segment was just ensured");
        match &mut seg.data {
            SegData::Mem(v) => {
                let need = rec as usize;
                if v.capacity() - v.len() < need {
                    // Grow by doubling, but never past one segment (plus this record).
                    let want = (v.capacity() * 2)
                        .max(v.len() + need)
                        .min((s.def.segment_size as usize).max(v.len() + need));
                    v.reserve_exact(want - v.len());
                }
                encode_record(v, seq, now_ms, payload);
            }
            SegData::File(p) => {
                let mut buf = Vec::with_capacity(rec as usize);
                encode_record(&mut buf, seq, now_ms, payload);
                if s.active.is_none() {
                    let f = fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&*p)
                        .map_err(|e| io_err("cannot open", p, e));
                    // flushOnWrite: the new file's directory entry must survive power loss too.
                    if s.def.flush_on_write && seg.bytes == 0 {
                        if let Some(d) = &s.dir {
                            let _ = File::open(d).and_then(|d| d.sync_all());
                        }
                    }
                    match f {
                        Ok(f) => s.active = Some(f),
                        Err(e) => {
                            self.counters.io_errors += 1;
                            return Err(e);
                        }
                    }
                }
                let f = s.active.as_mut().expect("opened above");
                let res = f.write_all(&buf).and_then(|_| {
                    if s.def.flush_on_write {
                        f.sync_data()
                    } else {
                        Ok(())
                    }
                });
                if let Err(e) = res {
                    // Cut back whatever part got written; the message is not stored.
                    let _ = f.set_len(seg.bytes);
                    self.counters.io_errors += 1;
                    return Err(io_err("cannot write", p, e));
                }
            }
        }
        seg.note(seq, now_ms, rec);
        s.next_seq += 1;
        s.bytes += rec;
        self.total += rec;
        self.counters.appended += 1;
        Ok(seq)
    }

    /// Drops stream `i`'s oldest segment; returns the messages dropped.
    fn drop_oldest(&mut self, i: usize) -> u64 {
        let s = &mut self.streams[i];
        let Some(seg) = s.segs.pop_front() else {
            return 0;
        };
        if s.segs.is_empty() {
            s.active = None;
        }
        s.bytes -= seg.bytes;
        self.total -= seg.bytes;
        if let SegData::File(p) = &seg.data {
            if let Err(e) = fs::remove_file(p) {
                log::warn!(target: "GGStreamManager",
                    "stream manager: cannot remove {}: {e}", p.display()
                );
            }
            // The next sequence number must survive even when no segment is left.
            if let Err(e) = write_meta(s) {
                log::warn!(target: "GGStreamManager",
                    "stream manager: {e}"
                );
            }
        }
        seg.next - seg.first
    }

    /// Drops segments whose newest message is older than the stream's `timeToLiveMillis`.
    pub fn expire(&mut self, now_ms: u64) {
        for i in 0..self.streams.len() {
            let Some(ttl) = self.streams[i].def.ttl_ms else {
                continue;
            };
            while self.streams[i]
                .segs
                .front()
                .is_some_and(|s| s.newest_ingest.saturating_add(ttl) < now_ms)
            {
                let n = self.drop_oldest(i);
                self.counters.expired += n;
            }
        }
    }

    /// Messages at or after `start` that could be read now (0 if the stream is gone).
    pub fn available(&self, name: &str, start: u64) -> u64 {
        self.find(name).map_or(0, |i| {
            let s = &self.streams[i];
            s.next_seq.saturating_sub(start.max(s.oldest()))
        })
    }

    /// Reads up to `max` messages from `start` (the oldest if `start` is older), with at most
    /// `max_bytes` of payload (at least one message is returned when one is there).
    pub fn read(
        &self,
        name: &str,
        start: u64,
        max: u64,
        max_bytes: usize,
    ) -> Result<Vec<Message>, StoreError> {
        let s = &self.streams[self.find(name)?];
        let start = start.max(s.oldest());
        let mut out: Vec<Message> = Vec::new();
        let mut size = 0usize;
        for seg in s.segs.iter().filter(|g| g.next > start) {
            let pos = seg.index.partition_point(|e| e.0 <= start);
            let offset = if pos == 0 { 0 } else { seg.index[pos - 1].1 };
            let mut full = false;
            let mut f = |seq: u64, ingest: u64, payload: &[u8], _rec: u64| {
                if seq < start {
                    return true;
                }
                if out.len() as u64 >= max || (!out.is_empty() && size + payload.len() > max_bytes)
                {
                    full = true;
                    return false;
                }
                size += payload.len();
                out.push(Message {
                    seq,
                    ingest_ms: ingest,
                    payload: payload.to_vec(),
                });
                true
            };
            match &seg.data {
                SegData::Mem(v) => {
                    let mut r = v.get(offset as usize..seg.bytes as usize).unwrap_or(&[]);
                    walk(&mut r, &mut f);
                }
                SegData::File(p) => {
                    let mut file = File::open(p).map_err(|e| io_err("cannot open", p, e))?;
                    file.seek(SeekFrom::Start(offset))
                        .map_err(|e| io_err("cannot read", p, e))?;
                    let mut r = BufReader::with_capacity(16 * 1024, file.take(seg.bytes - offset));
                    walk(&mut r, &mut f);
                }
            }
            if full {
                break;
            }
        }
        Ok(out)
    }

    /// What describe shows.
    pub fn info(&self, name: &str) -> Result<Info<'_>, StoreError> {
        let s = &self.streams[self.find(name)?];
        Ok(Info {
            definition: &s.def,
            oldest: s.oldest(),
            newest: s.next_seq as i64 - 1,
            bytes: s.bytes,
            exports: &s.exports,
        })
    }

    /// The HTTP exports of every stream: (stream, export index, config).
    pub fn http_exports(&self) -> Vec<(String, wire::HttpExport)> {
        self.streams
            .iter()
            .flat_map(|s| s.def.http.iter().map(|h| (s.def.name.clone(), h.clone())))
            .collect()
    }

    /// One export's progress, if the stream and export still exist.
    pub fn export_progress(&self, name: &str, id: &str) -> Option<&ExportProgress> {
        let s = &self.streams[self.find(name).ok()?];
        s.exports.iter().find(|e| e.identifier == id)
    }

    /// Records an export attempt: `Ok(next)` moved progress to `next` (saved with the
    /// stream's metadata), `Err(m)` is shown as the export's errorMessage.
    pub fn export_result(
        &mut self,
        name: &str,
        id: &str,
        now_ms: u64,
        r: Result<(u64, u64, u64), String>,
    ) {
        let Ok(i) = self.find(name) else { return };
        let s = &mut self.streams[i];
        let Some(e) = s.exports.iter_mut().find(|e| e.identifier == id) else {
            return;
        };
        e.last_time_ms = now_ms;
        match r {
            Ok((next, msgs, bytes)) => {
                e.next = next;
                e.error = None;
                e.messages += msgs;
                e.bytes += bytes;
                if let Err(err) = write_meta(s) {
                    log::warn!(target: "GGStreamManager",
                        "stream manager: {err}"
                    );
                }
            }
            Err(m) => e.error = Some(m),
        }
    }
}

fn export_list(def: &Definition, progress: &[(String, u64)]) -> Vec<ExportProgress> {
    let known = |id: &str| progress.iter().find(|p| p.0 == id).map(|p| p.1);
    def.http
        .iter()
        .map(|h| (h.identifier.clone(), h.start_sequence_number, None))
        .chain(def.unsupported.iter().map(|(kind, id)| {
            (
                id.clone(),
                0,
                Some(format!(
                    "{kind} export is not supported by sprig yet (it needs AWS credentials); the data stays in the stream"
                )),
            )
        }))
        .map(|(identifier, start, error)| ExportProgress {
            next: known(&identifier).unwrap_or(start),
            identifier,
            last_time_ms: 0,
            error,
            messages: 0,
            bytes: 0,
        })
        .collect()
}

fn write_meta(s: &Stream) -> Result<(), StoreError> {
    let Some(dir) = &s.dir else { return Ok(()) };
    let mut e = Encoder::new(Vec::new());
    let _ = e.map(3).and_then(|e| e.str("definition"));
    wire::encode_definition(&mut e, &s.def);
    let _ = e.str("nextSequenceNumber").and_then(|e| e.u64(s.next_seq));
    let _ = e
        .str("exports")
        .and_then(|e| e.array(s.exports.len() as u64));
    for x in &s.exports {
        let _ = e
            .array(2)
            .and_then(|e| e.str(&x.identifier))
            .and_then(|e| e.u64(x.next));
    }
    let bytes = e.into_writer();
    let tmp = dir.join("meta.tmp");
    let path = dir.join("meta");
    let res = File::create(&tmp)
        .and_then(|mut f| f.write_all(&bytes).and_then(|_| f.sync_data()))
        .and_then(|_| fs::rename(&tmp, &path));
    res.map_err(|e| io_err("cannot write", &path, e))
}

type Meta = (Definition, u64, Vec<(String, u64)>);

fn decode_meta(b: &[u8]) -> Result<Meta, String> {
    let mut d = Decoder::new(b);
    let err = |e: minicbor::decode::Error| e.to_string();
    let n = d.map().map_err(err)?.unwrap_or(0);
    let (mut def, mut next, mut progress) = (None, 0, Vec::new());
    for _ in 0..n {
        match d.str().map_err(err)? {
            "definition" => {
                let start = d.position();
                d.skip().map_err(err)?;
                def = Some(wire::decode_definition(&b[start..d.position()])?);
            }
            "nextSequenceNumber" => next = d.u64().map_err(err)?,
            "exports" => {
                let k = d.array().map_err(err)?.unwrap_or(0).min(256);
                for _ in 0..k {
                    d.array().map_err(err)?;
                    progress.push((d.str().map_err(err)?.to_owned(), d.u64().map_err(err)?));
                }
            }
            _ => d.skip().map_err(err)?,
        }
    }
    Ok((def.ok_or("no definition")?, next, progress))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
pub(crate) mod tests_support {
    use std::path::PathBuf;

    /// A directory under the system temp dir, removed on drop.
    pub struct Tmp(pub PathBuf);

    impl Tmp {
        pub fn new(label: &str) -> Tmp {
            let p = std::env::temp_dir().join(format!(
                "sprig-streams-{label}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&p);
            Tmp(p)
        }
    }

    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
