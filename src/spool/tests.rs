use super::*;
use std::fs;
use std::path::PathBuf;

struct TempDir(PathBuf);
impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let p =
            std::env::temp_dir().join(format!("sprig-spool-{name}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

const BUDGET: u64 = 262_144;

fn push(s: &mut Spool, i: usize, size: usize) -> u64 {
    let payload = format!("{i:08}")
        .into_bytes()
        .into_iter()
        .cycle()
        .take(size)
        .collect::<Vec<u8>>();
    s.push(&format!("t/{i}"), Bytes::from(payload), 1).unwrap()
}

/// A FileSystem spool in `d` (budget [`BUDGET`]) holding messages `range` of `size` bytes.
fn spool_with(d: &TempDir, range: std::ops::Range<usize>, size: usize) -> Spool {
    let mut s = Spool::open(&d.0, BUDGET).unwrap();
    for i in range {
        push(&mut s, i, size);
    }
    s
}

/// Drains the spool in order (acking each), returning the topics.
fn drain(s: &mut Spool) -> Vec<String> {
    let mut out = Vec::new();
    while let Some((seq, m)) = s.next_after(None) {
        assert!(s.ack(seq));
        out.push(m.topic);
    }
    out
}

fn topics(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("t/{i}")).collect()
}

#[test]
fn fifo_order_and_ack_by_sequence() {
    for dir in [None, Some(TempDir::new("fifo"))] {
        let mut s = match &dir {
            Some(d) => Spool::open(&d.0, BUDGET).unwrap(),
            None => Spool::memory(BUDGET),
        };
        let seqs: Vec<u64> = (0..10).map(|i| push(&mut s, i, 100)).collect();
        // Three in flight, acknowledged out of order: nothing leaves until acked.
        let (a, _) = s.next_after(None).unwrap();
        let (b, _) = s.next_after(Some(a)).unwrap();
        let (c, m) = s.next_after(Some(b)).unwrap();
        assert_eq!(
            (a, b, c, m.topic.as_str()),
            (seqs[0], seqs[1], seqs[2], "t/2")
        );
        assert!(s.ack(b));
        assert!(!s.ack(b), "second ack of the same message is ignored");
        assert_eq!(s.stats().messages, 9);
        assert_eq!(
            s.next_after(None).unwrap().0,
            a,
            "unacked head is offered again"
        );
        assert!(s.ack(a));
        assert!(s.ack(c));
        assert_eq!(drain(&mut s), topics(3..10));
        assert!(s.is_empty());
        assert_eq!(s.stats().bytes, 0);
    }
}

#[test]
fn budget_drops_oldest_and_counts() {
    for dir in [None, Some(TempDir::new("budget"))] {
        let mut s = match &dir {
            Some(d) => Spool::open(&d.0, BUDGET).unwrap(),
            None => Spool::memory(BUDGET),
        };
        let each = cost(3, 1000); // "t/N" for N < 10, below the first wraparound
        for i in 0..1000 {
            push(&mut s, i, 1000);
            assert!(s.stats().bytes <= BUDGET, "over budget after {i}");
        }
        let st = s.stats();
        let fit = st.messages;
        assert!(
            fit >= BUDGET / (each + 3) - 1 && fit <= BUDGET / each,
            "{fit}"
        );
        assert_eq!(st.dropped_full, 1000 - fit);
        assert_eq!(
            drain(&mut s),
            topics(1000 - fit as usize..1000),
            "newest survive, in order"
        );
    }
}

#[test]
fn too_big_is_refused_and_counted() {
    let mut s = Spool::memory(BUDGET);
    assert!(matches!(
        s.push("t", Bytes::from(vec![0; BUDGET as usize]), 1),
        Err(PushError::TooBig)
    ));
    assert!(matches!(
        s.push("", Bytes::new(), 1),
        Err(PushError::TooBig)
    ));
    assert_eq!(s.stats().dropped_too_big, 2);
    assert_eq!(s.stats().messages, 0);
}

#[test]
fn index_entry_fits_in_the_overhead() {
    // Each message's memory: its data allocation (plus a malloc header, ~16 bytes) and an index
    // slot, with up to 1/8 spare slots. All of that must fit in the charged overhead.
    let slot = std::mem::size_of::<Entry>() as u64;
    assert!(
        slot * 9 / 8 + 16 <= SPOOL_RECORD_OVERHEAD_BYTES,
        "entry is {slot} bytes"
    );
}

#[test]
fn reopen_keeps_unacked_in_order() {
    let d = TempDir::new("reopen");
    {
        let mut s = spool_with(&d, 0..300, 500);
        for _ in 0..100 {
            let (seq, _) = s.next_after(None).unwrap();
            s.ack(seq);
        }
        s.flush();
    }
    let mut s = Spool::open(&d.0, BUDGET).unwrap();
    assert_eq!(s.stats().messages, 200);
    push(&mut s, 300, 10);
    let mut want = topics(100..300);
    want.push("t/300".into());
    assert_eq!(drain(&mut s), want);
    s.flush();
    drop(s);
    // Everything acknowledged: reopened empty, and the consumed segments are gone.
    let s = Spool::open(&d.0, BUDGET).unwrap();
    assert!(s.is_empty());
    let segs = fs::read_dir(&d.0)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "seg")
        })
        .count();
    assert!(segs <= 1, "{segs} segments left");
}

/// A spool directory bigger than the budget it is opened with (the budget was lowered):
/// only the newest messages that fit are indexed, the rest are counted as dropped.
#[test]
fn reopen_with_a_smaller_budget_keeps_the_newest() {
    let d = TempDir::new("shrink");
    {
        let mut s = spool_with(&d, 0..300, 500);
        s.flush();
    }
    let small = 10 * cost("t/299".len(), 500);
    let mut s = Spool::open(&d.0, small).unwrap();
    assert_eq!(s.stats().messages, 10);
    assert_eq!(s.stats().dropped_full, 290);
    assert!(s.stats().bytes <= small);
    assert_eq!(drain(&mut s), topics(290..300));
}

/// A damaged head marker (here 1 MiB of junk) reads as "nothing acknowledged": everything on
/// disk is sent again, nothing is lost, and only 9 bytes of it are read.
#[test]
fn a_damaged_head_marker_resends_everything() {
    let d = TempDir::new("head");
    {
        let mut s = spool_with(&d, 0..5, 10);
        for _ in 0..2 {
            let (seq, _) = s.next_after(None).unwrap();
            s.ack(seq);
        }
        s.flush();
    }
    assert_eq!(Spool::open(&d.0, BUDGET).unwrap().stats().messages, 3);
    fs::write(d.0.join("head"), vec![0xa5; 1 << 20]).unwrap();
    let mut s = Spool::open(&d.0, BUDGET).unwrap();
    assert_eq!(drain(&mut s), topics(0..5));
}

#[test]
fn unflushed_acks_resend_never_lose() {
    let d = TempDir::new("unflushed");
    {
        let mut s = spool_with(&d, 0..5, 10);
        let (seq, _) = s.next_after(None).unwrap();
        s.ack(seq); // not flushed: like a crash before the marker timer
    }
    let mut s = Spool::open(&d.0, BUDGET).unwrap();
    let got = drain(&mut s);
    assert!(got == topics(0..5) || got == topics(1..5), "{got:?}");
}

fn only_segment(dir: &std::path::Path) -> PathBuf {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v.pop().unwrap()
}

#[test]
fn torn_tail_drops_only_the_last_record() {
    let d = TempDir::new("torn");
    drop(spool_with(&d, 0..5, 100));
    let seg = only_segment(&d.0);
    let full = fs::read(&seg).unwrap();
    let one = full.len() / 5;
    // Every cut inside the last record: the first four survive, the torn one is dropped.
    for cut in [
        full.len() - 1,
        full.len() - one + 1,
        full.len() - one + 8,
        full.len() - one + 20,
    ] {
        fs::write(&seg, &full[..cut]).unwrap();
        let mut s = Spool::open(&d.0, BUDGET).unwrap();
        assert_eq!(s.stats().torn_tails, 1, "cut {cut}");
        assert_eq!(s.stats().corrupt_segments, 0);
        // New messages go after the survivors.
        push(&mut s, 9, 5);
        let mut want = topics(0..4);
        want.push("t/9".into());
        let got: Vec<String> = {
            let mut v = Vec::new();
            let mut after = None;
            while let Some((seq, m)) = s.next_after(after) {
                after = Some(seq);
                v.push(m.topic);
            }
            v
        };
        assert_eq!(got, want, "cut {cut}");
        drop(s);
        for p in fs::read_dir(&d.0).unwrap().map(|e| e.unwrap().path()) {
            if p != seg && p.extension().is_some_and(|x| x == "seg") {
                fs::remove_file(p).unwrap();
            }
        }
    }
    assert_eq!(
        fs::metadata(&seg).unwrap().len() as usize,
        full.len() - one,
        "tail truncated"
    );
}

#[test]
fn corrupt_segment_is_set_aside_never_fatal() {
    let d = TempDir::new("corrupt");
    drop(spool_with(&d, 0..5, 100));
    let seg = only_segment(&d.0);
    let mut bytes = fs::read(&seg).unwrap();
    bytes[30] ^= 0xff; // inside the first record's body
    fs::write(&seg, &bytes).unwrap();
    let mut s = Spool::open(&d.0, BUDGET).unwrap();
    assert_eq!(s.stats().corrupt_segments, 1);
    assert!(s.is_empty());
    assert!(d
        .0
        .join(format!(
            "{}.corrupt",
            seg.file_name().unwrap().to_string_lossy()
        ))
        .exists());
    // The spool keeps working, with sequence numbers past the damaged ones.
    push(&mut s, 7, 10);
    assert_eq!(drain(&mut s), topics(7..8));
}

#[test]
fn damage_after_open_is_dropped_on_read_and_counted() {
    let d = TempDir::new("readback");
    let mut s = spool_with(&d, 0..3, 100);
    let seg = only_segment(&d.0);
    let mut bytes = fs::read(&seg).unwrap();
    bytes[30] ^= 0xff;
    fs::write(&seg, &bytes).unwrap();
    assert_eq!(drain(&mut s), topics(1..3));
    assert_eq!(s.stats().dropped_corrupt, 1);
}

#[test]
fn segments_roll_and_are_deleted_when_acked() {
    let d = TempDir::new("roll");
    let mut s = Spool::open(&d.0, 4 * 1024 * 1024).unwrap();
    for i in 0..100 {
        push(&mut s, i, 4000);
    }
    let count = |d: &std::path::Path| {
        fs::read_dir(d)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "seg")
            })
            .count()
    };
    assert!(count(&d.0) >= 5);
    assert_eq!(drain(&mut s), topics(0..100));
    assert_eq!(count(&d.0), 1, "only the active segment remains");
}

#[test]
fn sequence_numbers_continue_after_everything_was_acked_and_deleted() {
    let d = TempDir::new("seqcontinue");
    for round in 0..3 {
        let mut s = Spool::open(&d.0, BUDGET).unwrap();
        // The message spooled before the last "crash" (none in the first round) survives.
        let want = if round == 0 {
            Vec::new()
        } else {
            topics(round..round + 1)
        };
        assert_eq!(drain(&mut s), want, "round {round}");
        s.flush();
        drop(s);
        // Reopen (the consumed segments go), then spool one message and "crash".
        let mut s = Spool::open(&d.0, BUDGET).unwrap();
        push(&mut s, round + 1, 10);
    }
}

#[test]
fn empty_segment_from_a_crash_before_the_first_write_is_removed() {
    let d = TempDir::new("emptyseg");
    {
        let mut s = Spool::open(&d.0, BUDGET).unwrap();
        push(&mut s, 0, 10);
        let (seq, _) = s.next_after(None).unwrap();
        s.ack(seq);
        s.flush();
    }
    // A segment created for the next sequence number, never written.
    fs::write(d.0.join(format!("{:016x}.seg", 2)), b"").unwrap();
    let mut s = spool_with(&d, 1..4, 10);
    // Acking the first deletes consumed segments; the live ones must stay readable.
    let (seq, _) = s.next_after(None).unwrap();
    s.ack(seq);
    s.flush();
    drop(s);
    let mut s = Spool::open(&d.0, BUDGET).unwrap();
    assert_eq!(drain(&mut s), topics(2..4));
    assert_eq!(s.stats().dropped_corrupt, 0);
}
