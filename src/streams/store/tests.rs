use super::*;
use crate::streams::wire::{ExportFormat, HttpExport};

use super::tests_support::Tmp;

fn def(name: &str, persistence: Persistence, strategy: Strategy, max: u64, seg: u64) -> Definition {
    Definition {
        name: name.into(),
        max_size: max,
        segment_size: seg,
        ttl_ms: None,
        strategy,
        persistence,
        flush_on_write: false,
        export_raw: None,
        http: Vec::new(),
        unsupported: Vec::new(),
    }
}

/// A File stream "t" with a one-minute TTL and 1 KiB segments.
fn ttl_def(name: &str) -> Definition {
    let mut d = def(
        name,
        Persistence::File,
        Strategy::RejectNewData,
        1 << 20,
        1024,
    );
    d.ttl_ms = Some(60_000);
    d
}

fn seqs(s: &Store, name: &str, start: u64) -> Vec<u64> {
    s.read(name, start, u64::MAX, usize::MAX)
        .unwrap()
        .iter()
        .map(|m| m.seq)
        .collect()
}

#[test]
fn record_round_trip_and_damage() {
    let mut b = Vec::new();
    encode_record(&mut b, 7, 99, b"abc");
    let mut got = Vec::new();
    let (used, damaged) = walk(&mut &b[..], |seq, ingest, p, _| {
        got.push((seq, ingest, p.to_vec()));
        true
    });
    assert_eq!((used, damaged), (27, false));
    assert_eq!(got, vec![(7, 99, b"abc".to_vec())]);
    let mut bad = b.clone();
    bad[26] ^= 1;
    assert_eq!(walk(&mut &bad[..], |_, _, _, _| true), (0, true));
    assert_eq!(walk(&mut &b[..20], |_, _, _, _| true), (0, false));
}

#[test]
fn both_persistences_append_read_ranges_across_segments() {
    let t = Tmp::new("rw");
    let mut s = Store::open(&t.0, 1 << 20);
    for (name, p) in [("f", Persistence::File), ("m", Persistence::Memory)] {
        s.create(def(name, p, Strategy::RejectNewData, 1 << 20, 1024))
            .unwrap();
        for i in 0..500u64 {
            assert_eq!(s.append(name, format!("{i}").as_bytes(), i).unwrap(), i);
        }
        assert_eq!(seqs(&s, name, 0), (0..500).collect::<Vec<_>>());
        let r = s.read(name, 321, 3, usize::MAX).unwrap();
        assert_eq!(r[0].payload, b"321");
        assert_eq!(r.iter().map(|m| m.seq).collect::<Vec<_>>(), [321, 322, 323]);
        // The byte cap still returns one message.
        assert_eq!(s.read(name, 10, 100, 1).unwrap().len(), 1);
        assert_eq!(s.available(name, 495), 5);
    }
    assert_eq!(
        s.create(def(
            "f",
            Persistence::File,
            Strategy::RejectNewData,
            1024,
            1024
        )),
        Err(StoreError::Exists("f".into()))
    );
    assert_eq!(s.names(), ["f", "m"]);
}

#[test]
fn reject_overwrite_and_the_store_bound() {
    let t = Tmp::new("bounds");
    let mut s = Store::open(&t.0, 8192);
    s.create(def(
        "r",
        Persistence::Memory,
        Strategy::RejectNewData,
        2048,
        1024,
    ))
    .unwrap();
    let rec = RECORD_HEADER_BYTES + 100;
    let fit = 2048 / rec;
    for _ in 0..fit {
        s.append("r", &[0; 100], 0).unwrap();
    }
    assert!(matches!(
        s.append("r", &[0; 100], 0),
        Err(StoreError::StreamFull { .. })
    ));
    s.create(def(
        "o",
        Persistence::File,
        Strategy::OverwriteOldestData,
        4096,
        1024,
    ))
    .unwrap();
    for _ in 0..200 {
        s.append("o", &[1; 100], 0).unwrap();
    }
    let i = s.info("o").unwrap();
    assert!(i.bytes <= 4096 && i.oldest > 150 && i.newest == 199);
    assert!(s.counters.overwritten > 150);
    // The store bound: 8192 - r - o left for a third stream that would take 1 MiB.
    s.create(def(
        "x",
        Persistence::Memory,
        Strategy::RejectNewData,
        1 << 20,
        1 << 20,
    ))
    .unwrap();
    let mut n = 0;
    let err = loop {
        match s.append("x", &[2; 100], 0) {
            Ok(_) => n += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(err, StoreError::StoreFull { max: 8192 });
    assert_eq!(err.status(), Status::OutOfMemory);
    assert!(s.usage().0 <= 8192 && n > 0);
    // Overwrite streams make room for themselves at the store bound.
    s.append("o", &[1; 100], 0).unwrap();
    s.delete("x").unwrap();
    assert_eq!(s.delete("x"), Err(StoreError::NotFound("x".into())));
}

#[test]
fn ttl_drops_whole_old_segments() {
    let t = Tmp::new("ttl");
    let mut s = Store::open(&t.0, 1 << 20);
    s.create(ttl_def("t")).unwrap();
    for i in 0..20 {
        s.append("t", &[0; 100], 1_000 + i).unwrap(); // old
    }
    for i in 0..5 {
        s.append("t", &[0; 100], 100_000 + i).unwrap(); // new
    }
    s.expire(100_000);
    let oldest = s.info("t").unwrap().oldest;
    assert!(oldest > 0 && oldest <= 20, "{oldest}");
    assert_eq!(seqs(&s, "t", 0).last(), Some(&24));
    assert_eq!(s.counters.expired, oldest);
}

#[test]
fn reopen_recovers_streams_cuts_torn_tails_and_keeps_numbering() {
    let t = Tmp::new("reopen");
    {
        let mut s = Store::open(&t.0, 1 << 20);
        let mut d = def(
            "a",
            Persistence::File,
            Strategy::OverwriteOldestData,
            2048,
            1024,
        );
        // The export as the client sends it (describe and the metadata keep these bytes).
        let mut e = Encoder::new(Vec::new());
        e.map(1)
            .unwrap()
            .str("http")
            .unwrap()
            .array(1)
            .unwrap()
            .map(2)
            .unwrap();
        e.str("identifier").unwrap().str("web").unwrap();
        e.str("uri").unwrap().str("http://127.0.0.1:9/").unwrap();
        let raw = e.into_writer();
        d.export_raw = Some(raw);
        d.http.push(HttpExport {
            identifier: "web".into(),
            uri: "http://127.0.0.1:9/".into(),
            batch_size: 1,
            batch_interval_ms: None,
            start_sequence_number: 0,
            disabled: false,
            format: ExportFormat::RawNotBatched,
            priority: 11,
        });
        s.create(d).unwrap();
        s.create(def(
            "m",
            Persistence::Memory,
            Strategy::RejectNewData,
            2048,
            1024,
        ))
        .unwrap();
        for _ in 0..100 {
            s.append("a", &[3; 50], 0).unwrap();
        }
        s.export_result("a", "web", 5, Ok((42, 42, 42 * 50)));
    }
    // A torn write at the end of the last segment.
    let dir = t.0.join("s0");
    let mut segs: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    let last = segs.last().unwrap();
    let mut f = fs::OpenOptions::new().append(true).open(last).unwrap();
    f.write_all(&[9; 30]).unwrap();
    drop(f);
    let mut s = Store::open(&t.0, 1 << 20);
    assert_eq!(s.names(), ["a"], "Memory streams do not survive");
    assert_eq!(s.counters.recovered_cut_bytes, 30);
    let i = s.info("a").unwrap();
    assert_eq!(i.newest, 99);
    assert_eq!(s.export_progress("a", "web").unwrap().next, 42);
    assert_eq!(s.append("a", b"x", 0).unwrap(), 100);
    // Numbering survives even when every segment was dropped (here by the TTL).
    s.create(ttl_def("t")).unwrap();
    for _ in 0..10 {
        s.append("t", b"z", 0).unwrap();
    }
    s.expire(1 << 40);
    assert_eq!(s.info("t").unwrap().bytes, 0);
    drop(s);
    let mut s = Store::open(&t.0, 1 << 20);
    assert_eq!(s.append("t", b"y", 0).unwrap(), 10);
}

#[test]
fn a_corrupt_stream_directory_is_set_aside() {
    let t = Tmp::new("corrupt");
    fs::create_dir_all(t.0.join("s3")).unwrap();
    fs::write(t.0.join("s3/meta"), b"\xff\xff").unwrap();
    let s = Store::open(&t.0, 1 << 20);
    assert!(s.names().is_empty());
    assert!(t.0.join("s3.corrupt").exists());
}
